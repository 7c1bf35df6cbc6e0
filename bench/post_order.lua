-- wrk script for bench/compare_http.sh: POST /api/demo/orders, the demo route that sends
-- demo.order_placed to its handlers and answers 202 with the dispatch.
--
--   BENCH_TOKEN=<token> wrk -t2 -c64 -d15s --latency -s bench/post_order.lua \
--       http://127.0.0.1:18141/api/demo/orders
--
-- The token must be one of the server's COORDINATOR__AUTH__API_TOKENS. Every request is the same,
-- as with the peer's post_event.lua; no response() callback, so wrk does not parse bodies.
wrk.method = "POST"
wrk.body   = '{"order_number": "EDX-100001", "lms_user_id": 12345, "email": "ada@example.com", '
          .. '"course_run_key": "course-v1:edX+DemoX+T1", "amount_cents": 4900}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "bench-token")
