//! Paging shared by the list endpoints (`/api/v1/dispatches`, `/api/v1/tasks`): the `before`
//! cursor, the `limit` page size, and the `next` link.

use uuid::Uuid;

use super::error::ApiError;

/// The `before` cursor: the id of the last item of the previous page (`what`: "dispatch", "task").
pub(super) fn before(raw: Option<&str>, what: &str) -> Result<Option<Uuid>, ApiError> {
    let Some(before) = raw.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    Uuid::parse_str(before).map(Some).map_err(|_| ApiError::BadParameter {
        name: "before",
        problem: format!(
            "\"{before}\" is not a {what} id; pass the id of the last {what} of the previous page (the `next` link does)"
        ),
    })
}

/// The `limit` page size, from 1 to `max`; `None` when absent.
pub(super) fn limit(raw: Option<&str>, max: u32) -> Result<Option<u32>, ApiError> {
    let Some(limit) = raw.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    limit
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .map(Some)
        .ok_or_else(|| ApiError::BadParameter {
            name: "limit",
            problem: format!(
                "\"{limit}\" is not a page size; write a whole number from 1 to {max}"
            ),
        })
}

/// The URL of the page after the one that ended with `last`: `path` with the caller's non-empty
/// parameters and `before=<last>`.
pub(super) fn next_url(path: &str, params: &[(&str, Option<&str>)], last: Uuid) -> String {
    let before = last.to_string();
    let pairs: Vec<(&str, &str)> = params
        .iter()
        .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (*k, v)))
        .chain(std::iter::once(("before", before.as_str())))
        .collect();
    let query = serde_urlencoded::to_string(pairs).unwrap_or_default();
    format!("{path}?{query}")
}
