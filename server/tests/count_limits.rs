//! The instance-count limit at the API: a register or a scale whose group asks for one
//! instance more than the limit is refused with 400 naming the limit; at the limit it is
//! accepted.

mod common;

use common::*;
use nomos_api::limits::MAX_GROUP_COUNT;
use serde_json::json;

#[tokio::test]
async fn a_count_over_the_group_limit_is_a_400_naming_the_limit_and_the_limit_itself_is_accepted() {
    let srv = TestServer::start().await;
    let parsed = nomos_api::parse_source("web.hcl", WEB_HCL, &Default::default()).unwrap();
    let mut body = register_body(&parsed.jobs[0], WEB_HCL);
    body["Job"]["TaskGroups"][0]["Count"] = json!(MAX_GROUP_COUNT + 1);
    let (code, answer) = srv.post("/v1/jobs", body.clone()).await;
    assert_eq!(code, 400, "{answer}");
    assert!(
        answer
            .as_str()
            .unwrap()
            .contains("count 10001 is more than the limit of 10000 instances per group"),
        "{answer}"
    );
    assert!(srv.read_json("/nomos/jobs/default/web").await.is_none());

    body["Job"]["TaskGroups"][0]["Count"] = json!(MAX_GROUP_COUNT);
    let (code, answer) = srv.post("/v1/jobs", body).await;
    assert_eq!(code, 200, "{answer}");

    let scale = |count: u64| json!({"Count": count, "Target": {"Group": "frontend"}});
    let (code, answer) = srv
        .post("/v1/job/web/scale", scale(MAX_GROUP_COUNT + 1))
        .await;
    assert_eq!(code, 400, "{answer}");
    assert!(answer.to_string().contains("limit"), "{answer}");
    let (code, answer) = srv.post("/v1/job/web/scale", scale(3)).await;
    assert_eq!(code, 200, "{answer}");
    srv.stop().await;
}
