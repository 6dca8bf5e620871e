//! The instance-count limit at the API: a job file whose group asks for one instance more than
//! the limit is refused with 400 and the position of its `count`; at the limit it is accepted.

mod common;

use common::*;
use nomos_api::limits::MAX_GROUP_COUNT;

#[tokio::test]
async fn a_count_over_the_group_limit_is_a_400_at_the_count_and_the_limit_itself_is_accepted() {
    let srv = TestServer::start().await;
    let over = WEB_HCL.replace("count = 2", &format!("count = {}", MAX_GROUP_COUNT + 1));
    let (code, body) = apply_source(&srv, "web.hcl", &over).await;
    assert_eq!(code, 400, "{body}");
    let d = &body["diagnostics"][0];
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(7), Some(5)),
        "{d}"
    );
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("count 10001 is more than the limit of 10000 instances per group"),
        "{d}"
    );
    assert!(srv.read_json("/nomos/jobs/default/web").await.is_none());

    let at_limit = WEB_HCL.replace("count = 2", &format!("count = {MAX_GROUP_COUNT}"));
    let (code, body) = apply_source(&srv, "web.hcl", &at_limit).await;
    assert_eq!(code, 200, "{body}");
    srv.stop().await;
}
