-- wrk script for bench/compare_http.sh SHAPE=durable: POST /api/demo/orders with a new order
-- number on every request. The durable order route records each order number in the inbox, so
-- a repeated number would be answered 200 "duplicate" without storing anything: every request
-- here is a new order, stored with its dispatch and deliveries.
--
--   BENCH_TOKEN=<token> wrk -t2 -c64 -d15s --latency -s bench/post_unique_order.lua \
--       http://127.0.0.1:18141/api/demo/orders
--
-- Numbers are EDX-<run>-<thread>-<n>: <run> from the clock at start, so that two runs against
-- one database do not collide either.
local threads = {}
local run = tostring(os.time())

function setup(thread)
   thread:set("id", #threads + 1)
   table.insert(threads, thread)
end

function init(args)
   n = 0
   headers = {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "bench-token"),
   }
end

function request()
   n = n + 1
   local body = string.format(
      '{"order_number": "EDX-%s-%d-%d", "lms_user_id": 12345, "email": "ada@example.com", '
      .. '"course_run_key": "course-v1:edX+DemoX+T1", "amount_cents": 4900}', run, id, n)
   return wrk.format("POST", nil, headers, body)
end
