//! The SDK bridge (`cosell::engine::sdk`) against a real local HTTP server: what the SDK puts on
//! the wire for each supported operation, what `call` hands back, and how failures are
//! classified. The server records each request and answers with a canned response.

use cosell::engine::api::{ApiClient, ErrorKind};
use cosell::engine::sdk::{ConnectOptions, SdkClient, SDK_DEFAULTED_MEMBERS, SUPPORTED_OPERATIONS};
use cosell::model::{model, ShapeId, ShapeKind};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: Option<String>,
    content_type: Option<String>,
    authorization: Option<String>,
    body: Value,
}

/// What the server answers.
#[derive(Debug, Clone)]
struct Canned {
    status: u16,
    body: String,
    headers: Vec<(&'static str, String)>,
    /// Answer with the request body instead of `body`.
    echo: bool,
}

impl Canned {
    fn ok(body: Value) -> Self {
        Canned {
            status: 200,
            body: body.to_string(),
            headers: vec![],
            echo: false,
        }
    }
    fn echo() -> Self {
        Canned {
            echo: true,
            ..Canned::ok(json!({}))
        }
    }
    fn error(status: u16, kind: &str, body: Value) -> Self {
        let mut body = body;
        body["__type"] = json!(kind);
        Canned {
            status,
            body: body.to_string(),
            headers: vec![("x-amzn-errortype", kind.to_owned())],
            echo: false,
        }
    }
}

struct Server {
    endpoint: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    /// An HTTP/1 server on 127.0.0.1:0 answering every request with `canned`.
    async fn start(canned: Canned) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rec = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let rec = rec.clone();
                let canned = canned.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let rec = rec.clone();
                        let canned = canned.clone();
                        async move {
                            let h = |n: &str| {
                                req.headers().get(n).map(|v| v.to_str().unwrap().to_owned())
                            };
                            let (method, target, content_type, authorization) = (
                                req.method().to_string(),
                                h("x-amz-target"),
                                h("content-type"),
                                h("authorization"),
                            );
                            let bytes = req.into_body().collect().await?.to_bytes();
                            rec.lock().unwrap().push(Seen {
                                method,
                                target,
                                content_type,
                                authorization,
                                body: serde_json::from_slice(&bytes).expect("request body is JSON"),
                            });
                            let mut resp = hyper::Response::builder()
                                .status(canned.status)
                                .header("content-type", "application/x-amz-json-1.0");
                            for (k, v) in &canned.headers {
                                resp = resp.header(*k, v);
                            }
                            let body = if canned.echo {
                                bytes
                            } else {
                                Bytes::from(canned.body.clone())
                            };
                            Ok::<_, hyper::Error>(resp.body(Full::new(body)).unwrap())
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Server { endpoint, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A server that reads the request and closes the connection without answering.
async fn hang_up_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            drop(stream);
        }
    });
    endpoint
}

/// The production constructor, with static credentials and the test endpoint.
async fn client(endpoint: &str) -> SdkClient {
    SdkClient::connect(&ConnectOptions {
        endpoint_url: Some(endpoint.to_owned()),
        profile: None,
        region: "us-east-1".into(),
        static_credentials: Some(("AKIDCOSELLTEST".into(), "not-a-real-secret".into())),
    })
    .await
    .expect("connect")
}

#[track_caller]
fn assert_model_valid(op: &str, req: &Value) {
    let v = model().validate_input(op, req);
    assert!(v.is_empty(), "{op} fixture is not model-valid: {v:#?}");
}

/// `req` plus the members the SDK always writes (with its default) although the model lets
/// them be omitted (`SDK_DEFAULTED_MEMBERS`, read from the SDK source by the generator).
fn with_sdk_defaults(op: &str, req: &Value) -> Value {
    fn fill(id: ShapeId, v: &mut Value) {
        let sh = model().shape(id);
        match (&sh.kind, v) {
            (ShapeKind::Structure { members, union, .. }, Value::Object(o)) => {
                for m in members {
                    let default = SDK_DEFAULTED_MEMBERS
                        .iter()
                        .find(|(s, mm, _)| *s == sh.name && *mm == m.name)
                        .map(|(_, _, d)| serde_json::from_str::<Value>(d).unwrap());
                    if let (false, Some(d), false) = (*union, default, o.contains_key(&m.name)) {
                        o.insert(m.name.clone(), d);
                    }
                    if let Some(child) = o.get_mut(&m.name) {
                        fill(m.shape, child);
                    }
                }
            }
            (ShapeKind::List { member, .. }, Value::Array(a)) => {
                a.iter_mut().for_each(|e| fill(*member, e))
            }
            (ShapeKind::Map { value, .. }, Value::Object(o)) => {
                o.values_mut().for_each(|e| fill(*value, e))
            }
            _ => {}
        }
    }
    let mut v = req.clone();
    fill(model().operation(op).unwrap().input.unwrap(), &mut v);
    v
}

const TOKEN: &str = "3f1c9a52-8a4e-4c1e-9d2b-0e5a7c1b2d3f";

/// A realistic, model-valid request per supported operation, exercising nested structures,
/// unions, lists of structures, enums, integers and timestamps.
pub(crate) fn fixtures() -> Vec<(&'static str, Value)> {
    vec![
        (
            "CreateEngagement",
            json!({
                "Catalog": "Sandbox",
                "ClientToken": TOKEN,
                "Title": "Acme data platform",
                "Description": "Joint engagement for the Acme migration",
                "Contexts": [
                    {
                        "Type": "CustomerProject",
                        "Payload": {"CustomerProject": {
                            "Customer": {
                                "Industry": "Computers and Electronics",
                                "CompanyName": "Acme Corp",
                                "WebsiteUrl": "https://www.acme.example.com",
                                "CountryCode": "DE"
                            },
                            "Project": {
                                "Title": "Data lake migration",
                                "BusinessProblem": "On-premises warehouse cannot keep up with growth",
                                "TargetCompletionDate": "2027-03-31"
                            }
                        }}
                    },
                    {
                        "Type": "Lead",
                        "Payload": {"Lead": {
                            "QualificationStatus": "Qualified",
                            "Customer": {
                                "CompanyName": "Acme Corp",
                                "Industry": "Manufacturing",
                                "Address": {"City": "Berlin", "CountryCode": "DE"}
                            },
                            "Interactions": [{
                                "SourceType": "Event",
                                "SourceName": "re:Invent",
                                "InteractionDate": "2026-11-02T15:30:00Z",
                                "Contact": {
                                    "BusinessTitle": "CTO",
                                    "Email": "cto@acme.example.com",
                                    "FirstName": "Ada",
                                    "LastName": "Lovelace"
                                }
                            }]
                        }}
                    }
                ]
            }),
        ),
        (
            "GetEngagement",
            json!({"Catalog": "AWS", "Identifier": "eng-0123456789abcd"}),
        ),
        (
            "ListEngagements",
            json!({
                "Catalog": "Sandbox",
                "CreatedBy": ["123456789012"],
                "ContextTypes": ["CustomerProject"],
                "Sort": {"SortOrder": "DESCENDING", "SortBy": "CreatedDate"},
                "MaxResults": 50,
                "NextToken": "page-2"
            }),
        ),
        (
            "CreateEngagementInvitation",
            json!({
                "Catalog": "Sandbox",
                "ClientToken": TOKEN,
                "EngagementIdentifier": "eng-0123456789abcd",
                "Invitation": {
                    "Message": "Please join the Acme engagement",
                    "Receiver": {"Account": {"Alias": "Partner A", "AwsAccountId": "210987654321"}},
                    "Payload": {"OpportunityInvitation": {
                        "SenderContacts": [{
                            "Email": "seller@partner.example.com",
                            "FirstName": "Grace",
                            "LastName": "Hopper",
                            "BusinessTitle": "Partner Manager",
                            "Phone": "+4930123456"
                        }],
                        "ReceiverResponsibilities": ["Distributor", "Software Partner"],
                        "Customer": {
                            "Industry": "Financial Services",
                            "CompanyName": "Acme Corp",
                            "WebsiteUrl": "https://acme.example.com",
                            "CountryCode": "US"
                        },
                        "Project": {
                            "BusinessProblem": "Needs a modern analytics stack within a year",
                            "Title": "Analytics modernisation",
                            "TargetCompletionDate": "2027-06-30",
                            "ExpectedCustomerSpend": [{
                                "Amount": "12500.50",
                                "CurrencyCode": "USD",
                                "Frequency": "Monthly",
                                "TargetCompany": "AWS"
                            }]
                        }
                    }}
                }
            }),
        ),
        (
            "GetEngagementInvitation",
            json!({"Catalog": "AWS", "Identifier": "engi-0123456789abc"}),
        ),
        (
            "ListEngagementInvitations",
            json!({
                "Catalog": "AWS",
                "MaxResults": 20,
                "Sort": {"SortOrder": "ASCENDING", "SortBy": "InvitationDate"},
                "PayloadType": ["OpportunityInvitation"],
                "ParticipantType": "RECEIVER",
                "Status": ["PENDING", "ACCEPTED"],
                "EngagementIdentifier": ["eng-0123456789abcd"],
                "SenderAwsAccountId": ["123456789012"]
            }),
        ),
        (
            "RejectEngagementInvitation",
            json!({
                "Catalog": "AWS",
                "Identifier": "engi-0123456789abc",
                "RejectionReason": "Customer not in our territory"
            }),
        ),
        (
            "StartEngagementByAcceptingInvitationTask",
            json!({
                "Catalog": "AWS",
                "ClientToken": TOKEN,
                "Identifier": "engi-0123456789abc",
                "Tags": [{"Key": "campaign", "Value": "q4-2026"}]
            }),
        ),
        (
            "ListEngagementByAcceptingInvitationTasks",
            json!({
                "MaxResults": 100,
                "Sort": {"SortOrder": "DESCENDING", "SortBy": "StartTime"},
                "Catalog": "AWS",
                "TaskStatus": ["IN_PROGRESS", "COMPLETE"],
                "EngagementInvitationIdentifier": ["engi-0123456789abc"],
                "TaskIdentifier": ["task-0123456789abc"]
            }),
        ),
        (
            "StartEngagementFromOpportunityTask",
            json!({
                "Catalog": "Sandbox",
                "ClientToken": TOKEN,
                "Identifier": "O1234567",
                "AwsSubmission": {"InvolvementType": "Co-Sell", "Visibility": "Full"},
                "Tags": [{"Key": "team", "Value": "emea"}]
            }),
        ),
        (
            "ListEngagementFromOpportunityTasks",
            json!({
                "Catalog": "Sandbox",
                "MaxResults": 10,
                "TaskStatus": ["FAILED"],
                "OpportunityIdentifier": ["O1234567"],
                "EngagementIdentifier": ["eng-0123456789abcd"]
            }),
        ),
        (
            "CreateOpportunity",
            json!({
                "Catalog": "Sandbox",
                "ClientToken": TOKEN,
                "PrimaryNeedsFromAws": ["Co-Sell - Architectural Validation"],
                "NationalSecurity": "No",
                "PartnerOpportunityIdentifier": "CRM-000042",
                "Customer": {
                    "Account": {
                        "Industry": "Other",
                        "OtherIndustry": "Space logistics",
                        "CompanyName": "Acme Corp",
                        "WebsiteUrl": "https://acme.example.com",
                        "AwsAccountId": "123456789012",
                        "Address": {
                            "City": "Seattle",
                            "PostalCode": "98101",
                            "StateOrRegion": "Washington",
                            "CountryCode": "US",
                            "StreetAddress": "1 Main St"
                        },
                        "Duns": "123456789"
                    },
                    "Contacts": [{
                        "Email": "buyer@acme.example.com",
                        "FirstName": "Alan",
                        "LastName": "Turing",
                        "BusinessTitle": "Head of IT",
                        "Phone": "+12065550100"
                    }]
                },
                "Project": {
                    "DeliveryModels": ["SaaS or PaaS"],
                    "ExpectedCustomerSpend": [{
                        "Amount": "5000",
                        "CurrencyCode": "USD",
                        "Frequency": "Monthly",
                        "TargetCompany": "AWS",
                        "EstimationUrl": "https://calculator.aws/#/estimate?id=0123456789abcdef0123456789abcdef01234567"
                    }],
                    "ExpectedContractDuration": {"Term": "Months", "Value": "12"},
                    "Title": "Acme analytics",
                    "ApnPrograms": ["APN Immersion Days"],
                    "CustomerBusinessProblem": "Reporting takes days instead of minutes",
                    "CustomerUseCase": "Business Intelligence & Data Warehousing",
                    "SalesActivities": ["Initialized discussions with customer"],
                    "CompetitorName": "On-Prem",
                    "AdditionalComments": "Warm lead from the summit"
                },
                "OpportunityType": "Net New Business",
                "Marketing": {
                    "CampaignName": "summit-2026",
                    "Source": "Marketing Activity",
                    "UseCases": ["AI/ML"],
                    "Channels": ["AWS Marketing Central"],
                    "AwsFundingUsed": "No"
                },
                "SoftwareRevenue": {
                    "DeliveryModel": "Subscription",
                    "Value": {"Amount": "1000.00", "CurrencyCode": "EUR"},
                    "EffectiveDate": "2027-01-01",
                    "ExpirationDate": "2027-12-31"
                },
                "LifeCycle": {
                    "Stage": "Prospect",
                    "NextSteps": "Schedule discovery call",
                    "TargetCloseDate": "2027-05-31",
                    "NextStepsHistory": [{"Value": "Intro call", "Time": "2026-11-20T09:15:00Z"}]
                },
                "Origin": "Partner Referral",
                "OpportunityTeam": [{
                    "Email": "owner@partner.example.com",
                    "FirstName": "Katherine",
                    "LastName": "Johnson",
                    "BusinessTitle": "PartnerAccountManager"
                }],
                "Tags": [{"Key": "source", "Value": "cosell"}]
            }),
        ),
        (
            "GetOpportunity",
            json!({"Catalog": "AWS", "Identifier": "O1234567"}),
        ),
        // the rest of the API (issue 9): one model-valid request each
        (
            "AcceptEngagementInvitation",
            json!({"Catalog": "Sandbox", "Identifier": "engi-0123456789abc"}),
        ),
        (
            "AssignOpportunity",
            json!({"Catalog": "AWS", "Identifier": "O1234567", "Assignee": {
                "Email": "owner@partner.example.com", "FirstName": "Grace",
                "LastName": "Hopper", "BusinessTitle": "OpportunityOwner"}}),
        ),
        (
            "AssociateOpportunity",
            json!({"Catalog": "AWS", "OpportunityIdentifier": "O1234567",
                "RelatedEntityType": "Solutions", "RelatedEntityIdentifier": "S-0000001"}),
        ),
        (
            "CreateEngagementContext",
            json!({"Catalog": "Sandbox", "EngagementIdentifier": "eng-0123456789abcd",
                "ClientToken": TOKEN, "Type": "CustomerProject",
                "Payload": {"CustomerProject": {"Customer": {
                    "Industry": "Manufacturing", "CompanyName": "Acme Corp",
                    "WebsiteUrl": "https://www.acme.example.com", "CountryCode": "DE"}}}}),
        ),
        (
            "CreateResourceSnapshot",
            json!({"Catalog": "AWS", "EngagementIdentifier": "eng-0123456789abcd",
                "ResourceType": "Opportunity", "ResourceIdentifier": "O1234567",
                "ResourceSnapshotTemplateIdentifier": "AWSOpportunitySummary",
                "ClientToken": TOKEN}),
        ),
        (
            "CreateResourceSnapshotJob",
            json!({"Catalog": "AWS", "ClientToken": TOKEN,
                "EngagementIdentifier": "eng-0123456789abcd", "ResourceType": "Opportunity",
                "ResourceIdentifier": "O1234567",
                "ResourceSnapshotTemplateIdentifier": "AWSOpportunitySummary",
                "Tags": [{"Key": "source", "Value": "cosell"}]}),
        ),
        (
            "DeleteResourceSnapshotJob",
            json!({"Catalog": "AWS", "ResourceSnapshotJobIdentifier": "job-0123456789abc"}),
        ),
        (
            "DisassociateOpportunity",
            json!({"Catalog": "AWS", "OpportunityIdentifier": "O1234567",
                "RelatedEntityType": "AwsProducts", "RelatedEntityIdentifier": "AmazonS3"}),
        ),
        (
            "GetAwsOpportunitySummary",
            json!({"Catalog": "AWS", "RelatedOpportunityIdentifier": "O1234567"}),
        ),
        (
            "GetProspectingFromEngagementTask",
            json!({"Catalog": "AWS", "TaskIdentifier": "task-0123456789abcd"}),
        ),
        (
            "GetResourceSnapshot",
            json!({"Catalog": "AWS", "EngagementIdentifier": "eng-0123456789abcd",
                "ResourceType": "Opportunity", "ResourceIdentifier": "O1234567",
                "ResourceSnapshotTemplateIdentifier": "AWSOpportunitySummary", "Revision": 2}),
        ),
        (
            "GetResourceSnapshotJob",
            json!({"Catalog": "AWS", "ResourceSnapshotJobIdentifier": "job-0123456789abc"}),
        ),
        ("GetSellingSystemSettings", json!({"Catalog": "AWS"})),
        (
            "ListEngagementMembers",
            json!({"Catalog": "AWS", "Identifier": "eng-0123456789abcd", "MaxResults": 5,
                "NextToken": "page-2"}),
        ),
        (
            "ListEngagementResourceAssociations",
            json!({"Catalog": "AWS", "EngagementIdentifier": "eng-0123456789abcd",
                "ResourceType": "Opportunity", "MaxResults": 10}),
        ),
        (
            "ListOpportunities",
            json!({"Catalog": "AWS", "MaxResults": 20,
                "Sort": {"SortOrder": "DESCENDING", "SortBy": "LastModifiedDate"},
                "LifeCycleStage": ["Qualified"], "CustomerCompanyName": ["Acme Corp"]}),
        ),
        (
            "ListOpportunityFromEngagementTasks",
            json!({"Catalog": "AWS", "TaskIdentifier": ["task-0123456789abc"],
                "TaskStatus": ["COMPLETE"], "MaxResults": 10}),
        ),
        (
            "ListProspectingFromEngagementTasks",
            json!({"Catalog": "AWS", "TaskIdentifier": ["task-0123456789abcd"],
                "Sort": {"SortOrder": "ASCENDING", "SortBy": "StartTime"}}),
        ),
        (
            "ListResourceSnapshotJobs",
            json!({"Catalog": "AWS", "EngagementIdentifier": "eng-0123456789abcd",
                "Status": "Running"}),
        ),
        (
            "ListResourceSnapshots",
            json!({"Catalog": "AWS", "EngagementIdentifier": "eng-0123456789abcd",
                "ResourceType": "Opportunity", "ResourceIdentifier": "O1234567"}),
        ),
        (
            "ListSolutions",
            json!({"Catalog": "AWS", "Status": ["Active"], "MaxResults": 10,
                "Sort": {"SortOrder": "ASCENDING", "SortBy": "Name"}}),
        ),
        (
            "ListTagsForResource",
            json!({"ResourceArn": OPPORTUNITY_ARN}),
        ),
        (
            "PutSellingSystemSettings",
            json!({"Catalog": "AWS",
                "ResourceSnapshotJobRoleIdentifier": "arn:aws:iam::123456789012:role/snapshots"}),
        ),
        (
            "StartOpportunityFromEngagementTask",
            json!({"Catalog": "Sandbox", "ClientToken": TOKEN,
                "Identifier": "eng-0123456789abcd", "ContextIdentifier": "1"}),
        ),
        (
            "StartProspectingFromEngagementTask",
            json!({"Catalog": "AWS", "Identifiers": ["eng-0123456789abcd"],
                "TaskName": "December leads", "ClientToken": TOKEN}),
        ),
        (
            "StartResourceSnapshotJob",
            json!({"Catalog": "AWS", "ResourceSnapshotJobIdentifier": "job-0123456789abc"}),
        ),
        (
            "StopResourceSnapshotJob",
            json!({"Catalog": "AWS", "ResourceSnapshotJobIdentifier": "job-0123456789abc"}),
        ),
        (
            "SubmitOpportunity",
            json!({"Catalog": "AWS", "Identifier": "O1234567", "InvolvementType": "Co-Sell",
                "Visibility": "Full"}),
        ),
        (
            "TagResource",
            json!({"ResourceArn": OPPORTUNITY_ARN, "Tags": [{"Key": "team", "Value": "emea"}]}),
        ),
        (
            "UntagResource",
            json!({"ResourceArn": OPPORTUNITY_ARN, "TagKeys": ["team"]}),
        ),
        (
            "UpdateEngagementContext",
            json!({"Catalog": "Sandbox", "EngagementIdentifier": "eng-0123456789abcd",
                "ContextIdentifier": "1", "EngagementLastModifiedAt": "2026-11-20T09:15:00Z",
                "Type": "CustomerProject",
                "Payload": {"CustomerProject": {"Project": {
                    "Title": "Data lake migration",
                    "BusinessProblem": "On-premises warehouse cannot keep up with growth",
                    "TargetCompletionDate": "2027-03-31"}}}}),
        ),
        (
            "UpdateOpportunity",
            json!({"Catalog": "AWS", "Identifier": "O1234567",
                "LastModifiedDate": "2026-11-20T09:15:00Z",
                "LifeCycle": {"NextSteps": "Schedule the technical review"}}),
        ),
    ]
}

const OPPORTUNITY_ARN: &str =
    "arn:aws:partnercentral:us-east-1:123456789012:catalog/AWS/opportunity/O1234567";

#[test]
fn fixtures_cover_every_supported_operation_and_are_model_valid() {
    let fx = fixtures();
    let mut ops: Vec<&str> = fx.iter().map(|(op, _)| *op).collect();
    ops.sort_unstable();
    assert_eq!(
        ops, SUPPORTED_OPERATIONS,
        "one fixture per operation of the model"
    );
    for (op, req) in &fx {
        assert_model_valid(op, req);
    }
}

#[tokio::test]
async fn every_supported_operation_puts_the_request_json_on_the_wire() {
    let canned = json!({"Id": "x"});
    let server = Server::start(Canned::ok(canned.clone())).await;
    let sdk = client(&server.endpoint).await;
    for (op, req) in fixtures() {
        assert_model_valid(op, &req);
        let got = sdk.call(op, req.clone()).await;
        assert_eq!(got.as_ref().ok(), Some(&canned), "{op}: {got:?}");
        let seen = server.seen().pop().expect("a request");
        assert_eq!(
            seen.body,
            with_sdk_defaults(op, &req),
            "{op}: body on the wire differs"
        );
        assert_eq!(seen.method, "POST");
        assert_eq!(
            seen.target.as_deref(),
            Some(format!("AWSPartnerCentralSelling.{op}").as_str())
        );
        assert_eq!(
            seen.content_type.as_deref(),
            Some("application/x-amz-json-1.0")
        );
        let auth = seen.authorization.expect("Authorization header");
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDCOSELLTEST/")
                && auth.contains("/us-east-1/partnercentral-selling/aws4_request")
                && auth.contains("Signature="),
            "{auth}"
        );
    }
    assert_eq!(
        server.seen().len(),
        SUPPORTED_OPERATIONS.len(),
        "one attempt per call"
    );
}

#[tokio::test]
async fn the_sdk_writes_its_required_defaults_when_the_request_omits_them() {
    let server = Server::start(Canned::ok(json!({}))).await;
    let sdk = client(&server.endpoint).await;
    let (op, req) = fixtures().swap_remove(0);
    let interaction = &req["Contexts"][1]["Payload"]["Lead"]["Interactions"][0];
    assert!(interaction.get("SourceId").is_none() && interaction.get("CustomerAction").is_none());
    sdk.call(op, req.clone()).await.unwrap();
    let body = server.seen().pop().unwrap().body;
    let sent = &body["Contexts"][1]["Payload"]["Lead"]["Interactions"][0];
    assert_eq!(sent["SourceId"], json!(""));
    assert_eq!(sent["CustomerAction"], json!(""));
    assert_eq!(sent["SourceName"], json!("re:Invent"));
    assert_ne!(body, req);
}

#[tokio::test]
async fn a_missing_client_token_is_filled_by_the_sdk() {
    let server = Server::start(Canned::ok(json!({}))).await;
    let sdk = client(&server.endpoint).await;
    let (_, mut req) = fixtures()
        .into_iter()
        .find(|(op, _)| *op == "StartEngagementFromOpportunityTask")
        .unwrap();
    req.as_object_mut().unwrap().remove("ClientToken");
    // Not model-valid on purpose (ClientToken is required): the SDK's idempotency fill.
    sdk.call("StartEngagementFromOpportunityTask", req.clone())
        .await
        .unwrap();
    let mut body = server.seen().pop().unwrap().body;
    let token = body
        .as_object_mut()
        .unwrap()
        .remove("ClientToken")
        .expect("the SDK fills ClientToken");
    assert_eq!(token.as_str().unwrap().len(), 36, "a UUID: {token}");
    assert_eq!(body, req);
}

#[tokio::test]
async fn the_response_body_comes_back_exactly_as_sent() {
    // Deeply nested, with a member the SDK's typed output does not know: nothing is lost.
    let response = json!({
        "Id": "O1234567",
        "Catalog": "AWS",
        "Arn": "arn:aws:partnercentral:us-east-1::catalog/AWS/opportunity/O1234567",
        "LastModifiedDate": "2026-11-22T10:00:00.123Z",
        "CreatedDate": "2026-11-01T08:00:00Z",
        "Customer": {
            "Account": {
                "CompanyName": "Acme Corp",
                "Address": {"City": "Seattle", "CountryCode": "US"}
            },
            "Contacts": [{"Email": "buyer@acme.example.com", "FirstName": "Alan"}]
        },
        "LifeCycle": {
            "Stage": "Qualified",
            "ReviewStatus": "Approved",
            "NextStepsHistory": [{"Value": "Intro call", "Time": "2026-11-20T09:15:00Z"}]
        },
        "RelatedEntityIdentifiers": {"Solutions": ["S-0000001"], "AwsProducts": []},
        "SomeMemberAddedNextYear": {"Nested": [1, 2, {"Deep": true}]}
    });
    let server = Server::start(Canned::ok(response.clone())).await;
    let sdk = client(&server.endpoint).await;
    let got = sdk
        .call(
            "GetOpportunity",
            json!({"Catalog": "AWS", "Identifier": "O1234567"}),
        )
        .await
        .unwrap();
    assert_eq!(got, response);
}

#[tokio::test]
async fn an_empty_response_body_is_an_empty_object() {
    let server = Server::start(Canned {
        status: 200,
        body: String::new(),
        headers: vec![],
        echo: false,
    })
    .await;
    let sdk = client(&server.endpoint).await;
    let got = sdk
        .call(
            "RejectEngagementInvitation",
            json!({"Catalog": "AWS", "Identifier": "engi-0123456789abc"}),
        )
        .await
        .unwrap();
    assert_eq!(got, json!({}));
}

#[tokio::test]
async fn a_malformed_response_is_an_error() {
    let server = Server::start(Canned {
        status: 200,
        body: "{\"Id\": ".into(),
        headers: vec![],
        echo: false,
    })
    .await;
    let sdk = client(&server.endpoint).await;
    let err = sdk
        .call(
            "GetEngagement",
            json!({"Catalog": "AWS", "Identifier": "eng-0123456789abcd"}),
        )
        .await
        .unwrap_err();
    eprintln!("{err}");
    assert_eq!(err.kind, ErrorKind::Transport, "{err:?}");
    assert_eq!(err.code, "InvalidResponse");
    assert!(err.retryable());
}

async fn error_for(canned: Canned) -> cosell::engine::api::ApiError {
    let server = Server::start(canned).await;
    let sdk = client(&server.endpoint).await;
    let (op, req) = fixtures().swap_remove(3);
    let err = sdk.call(op, req).await.unwrap_err();
    assert_eq!(
        server.seen().len(),
        1,
        "one attempt: the engine owns retries"
    );
    assert!(!err.message.contains("not-a-real-secret"));
    assert!(!err.message.contains("Signature="));
    err
}

#[tokio::test]
async fn throttling_is_classified_for_the_rate_limiter() {
    let err = error_for(Canned::error(
        400,
        "ThrottlingException",
        json!({"Message": "Rate exceeded"}),
    ))
    .await;
    assert_eq!(err.kind, ErrorKind::Throttling);
    assert_eq!(err.code, "ThrottlingException");
    assert!(err.message.contains("Rate exceeded"), "{err}");
    assert!(err.retryable());
}

#[tokio::test]
async fn internal_server_errors_are_retryable_server_errors() {
    let err = error_for(Canned::error(
        500,
        "InternalServerException",
        json!({"Message": "Something broke"}),
    ))
    .await;
    assert_eq!(err.kind, ErrorKind::Server);
    assert_eq!(err.code, "InternalServerException");
    assert!(err.retryable());

    // Any 5xx is a server error, whatever the body says.
    let err = error_for(Canned {
        status: 503,
        body: "Service Unavailable".into(),
        headers: vec![],
        echo: false,
    })
    .await;
    assert_eq!(err.kind, ErrorKind::Server, "{err:?}");
}

#[tokio::test]
async fn validation_errors_carry_every_field_error() {
    let err = error_for(Canned::error(
        400,
        "ValidationException",
        json!({
            "Message": "Request failed validation",
            "Reason": "REQUEST_VALIDATION_FAILED",
            "ErrorList": [
                {"FieldName": "Invitation.Receiver.Account.AwsAccountId", "Message": "Account not found", "Code": "INVALID_VALUE"},
                {"FieldName": "EngagementIdentifier", "Message": "Engagement is closed", "Code": "ACTION_NOT_PERMITTED"}
            ]
        }),
    ))
    .await;
    assert_eq!(err.kind, ErrorKind::Client);
    assert_eq!(err.code, "ValidationException");
    assert!(!err.retryable());
    for want in [
        "Request failed validation",
        "REQUEST_VALIDATION_FAILED",
        "Invitation.Receiver.Account.AwsAccountId: INVALID_VALUE Account not found",
        "EngagementIdentifier: ACTION_NOT_PERMITTED Engagement is closed",
    ] {
        assert!(err.message.contains(want), "{want:?} missing in {err}");
    }
}

#[tokio::test]
async fn other_service_errors_keep_their_shape_name() {
    for (status, code) in [
        (409, "ConflictException"),
        (404, "ResourceNotFoundException"),
        (403, "AccessDeniedException"),
        (402, "ServiceQuotaExceededException"),
    ] {
        let err = error_for(Canned::error(status, code, json!({"Message": "nope"}))).await;
        assert_eq!((err.kind, err.code.as_str()), (ErrorKind::Client, code));
    }
    // An error shape the model does not know: the raw `__type`.
    let err = error_for(Canned::error(
        400,
        "BrandNewException",
        json!({"Message": "new"}),
    ))
    .await;
    assert_eq!(err.code, "BrandNewException");
    assert_eq!(err.kind, ErrorKind::Client);
}

#[tokio::test]
async fn expired_credentials_at_the_service_are_config_errors() {
    let err = error_for(Canned::error(
        400,
        "ExpiredTokenException",
        json!({"message": "The security token included in the request is expired"}),
    ))
    .await;
    assert_eq!(err.kind, ErrorKind::Config, "{err:?}");
    assert!(err.message.contains("aws sso login"), "{err}");
}

#[tokio::test]
async fn a_dropped_connection_is_a_transport_error() {
    let endpoint = hang_up_server().await;
    let sdk = client(&endpoint).await;
    let err = sdk
        .call(
            "GetOpportunity",
            json!({"Catalog": "AWS", "Identifier": "O1234567"}),
        )
        .await
        .unwrap_err();
    eprintln!("{err}");
    assert_eq!(err.kind, ErrorKind::Transport, "{err:?}");
    assert!(err.retryable());
    assert!(!err.message.is_empty());
}

#[tokio::test]
async fn a_refused_connection_is_a_transport_error() {
    // Bind and drop to get a port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let sdk = client(&format!("http://127.0.0.1:{port}")).await;
    let err = sdk
        .call(
            "GetEngagement",
            json!({"Catalog": "AWS", "Identifier": "eng-0123456789abcd"}),
        )
        .await
        .unwrap_err();
    eprintln!("{err}");
    assert_eq!(err.kind, ErrorKind::Transport, "{err:?}");
}

#[tokio::test]
async fn unsupported_operations_are_refused_before_sending() {
    // every operation of the API is supported: only a name outside the model is refused
    let server = Server::start(Canned::ok(json!({}))).await;
    let sdk = client(&server.endpoint).await;
    let err = sdk
        .call(
            "DeleteOpportunity",
            json!({"Catalog": "AWS", "Identifier": "O1"}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_str()),
        (ErrorKind::Client, "UnsupportedOperation")
    );
    assert!(err.message.contains("CreateEngagementInvitation"));
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn a_request_the_sdk_types_cannot_hold_is_refused_with_its_path() {
    let server = Server::start(Canned::ok(json!({}))).await;
    let sdk = client(&server.endpoint).await;
    let (op, mut req) = fixtures().swap_remove(3);
    req["Invitation"]["Payload"]["OpportunityInvitation"]["Customer"]["Typo"] = json!("x");
    let err = sdk.call(op, req).await.unwrap_err();
    assert_eq!(err.code, "InvalidRequest");
    assert!(
        err.message
            .contains("Invitation.Payload.OpportunityInvitation.Customer.Typo"),
        "{err}"
    );
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn missing_credentials_are_config_errors_with_a_fix() {
    let err = SdkClient::connect(&ConnectOptions {
        endpoint_url: Some("http://127.0.0.1:9".into()),
        profile: Some("cosell-no-such-profile".into()),
        region: "us-east-1".into(),
        static_credentials: None,
    })
    .await
    .unwrap_err();
    eprintln!("{err}");
    assert_eq!(err.kind, ErrorKind::Config, "{err:?}");
    assert!(err.message.contains("cosell-no-such-profile"), "{err}");
    assert!(err.message.contains("aws sso login"), "{err}");
}

#[tokio::test]
async fn from_client_wraps_an_sdk_client_built_elsewhere() {
    let server = Server::start(Canned::ok(json!({"EngagementSummaryList": []}))).await;
    let sdk = SdkClient::from_client(crate::support::sdk_client(&server.endpoint, "123456789012"));
    let got = sdk
        .call("ListEngagements", json!({"Catalog": "AWS"}))
        .await
        .unwrap();
    assert_eq!(got, json!({"EngagementSummaryList": []}));
    assert!(server.seen()[0]
        .authorization
        .as_deref()
        .unwrap()
        .contains("Credential=123456789012/"));
}

#[test]
fn sdk_client_is_cheap_to_share() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<SdkClient>();
}

#[tokio::test]
async fn a_client_without_credentials_fails_with_a_config_error() {
    use aws_sdk_partnercentralselling::config::{BehaviorVersion, Region};
    let server = Server::start(Canned::ok(json!({}))).await;
    let conf = aws_sdk_partnercentralselling::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&server.endpoint)
        .build();
    let sdk = SdkClient::from_client(aws_sdk_partnercentralselling::Client::from_conf(conf));
    let err = sdk
        .call(
            "GetOpportunity",
            json!({"Catalog": "AWS", "Identifier": "O1"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Config, "{err:?}");
    assert!(err.message.contains("aws sso login"), "{err}");
    assert!(err.message.contains("no credentials were found"), "{err}");
    assert!(server.seen().is_empty());
}

/// Random model-valid requests, generated from the model itself, round-trip through the SDK:
/// the wire body is the request (plus the SDK's documented defaults), and the response the
/// server echoes back comes out of `call` unchanged.
mod roundtrip {
    use super::*;
    use cosell::model::Shape;
    use proptest::prelude::*;
    use std::sync::LazyLock;

    static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    });
    static ECHO: LazyLock<(Server, SdkClient)> = LazyLock::new(|| {
        RT.block_on(async {
            let server = Server::start(Canned::echo()).await;
            let sdk = client(&server.endpoint).await;
            (server, sdk)
        })
    });

    /// Cap long repetition bounds so cases stay small (`.{20,2000}` → `.{20,64}`).
    fn shorten(pattern: &str) -> String {
        let re = regex::Regex::new(r"\{(\d+),(\d+)\}").unwrap();
        re.replace_all(pattern, |c: &regex::Captures| {
            let (a, b): (u64, u64) = (c[1].parse().unwrap(), c[2].parse().unwrap());
            format!("{{{a},{}}}", b.min(a.max(64)))
        })
        .into_owned()
    }

    fn string_strategy(sh: &'static Shape) -> BoxedStrategy<Value> {
        let ShapeKind::String {
            enum_values,
            pattern,
            min,
            max,
        } = &sh.kind
        else {
            unreachable!()
        };
        if let Some(values) = enum_values {
            return proptest::sample::select(values.clone())
                .prop_map(Value::String)
                .boxed();
        }
        // Without a pattern, cap the length (the model allows up to thousands of characters);
        // with one, the (shortened) pattern bounds it.
        let min = min.unwrap_or(0);
        let max = match (max, pattern) {
            (Some(m), _) => (*m).min(min.max(64)),
            (None, None) => min.max(64),
            (None, Some(_)) => u64::MAX,
        };
        let source = match pattern {
            // A leading length look-ahead is checked by the filter below instead.
            Some(p) => {
                let la = regex::Regex::new(r"^\(\?=\.\{\d+,\d+\}\$\)").unwrap();
                shorten(&la.replace(&p.source, ""))
            }
            None => format!("(?s).{{{min},{max}}}"),
        };
        let gen = proptest::string::string_regex(&source)
            .unwrap_or_else(|e| panic!("{}: cannot generate from {source}: {e}", sh.name));
        gen.prop_filter(format!("{} constraints", sh.name), move |s| {
            let n = s.chars().count() as u64;
            n >= min && n <= max.max(min) && pattern.as_ref().is_none_or(|p| p.is_match(s))
        })
        .prop_map(Value::String)
        .boxed()
    }

    fn strategy(id: ShapeId) -> BoxedStrategy<Value> {
        let sh: &'static Shape = model().shape(id);
        match &sh.kind {
            ShapeKind::String { .. } => string_strategy(sh),
            ShapeKind::Structure {
                members,
                union: true,
                ..
            } => {
                let arms: Vec<BoxedStrategy<Value>> = members
                    .iter()
                    .map(|m| {
                        let name = m.name.clone();
                        strategy(m.shape)
                            .prop_map(move |v| json!({ name.clone(): v }))
                            .boxed()
                    })
                    .collect();
                proptest::strategy::Union::new(arms).boxed()
            }
            ShapeKind::Structure { members, .. } => {
                let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = members
                    .iter()
                    .map(|m| {
                        let name = m.name.clone();
                        let s = strategy(m.shape).prop_map(move |v| (name.clone(), v));
                        if m.required {
                            s.prop_map(Some).boxed()
                        } else {
                            proptest::option::of(s).boxed()
                        }
                    })
                    .collect();
                fields
                    .prop_map(|fs| Value::Object(fs.into_iter().flatten().collect()))
                    .boxed()
            }
            ShapeKind::List { member, min, max } => {
                let lo = min.unwrap_or(0) as usize;
                let hi = (max.unwrap_or(3) as usize).min(lo + 3);
                proptest::collection::vec(strategy(*member), lo..=hi)
                    .prop_map(Value::Array)
                    .boxed()
            }
            ShapeKind::Integer { min, max } => (min.unwrap_or(i32::MIN as i64)
                ..=max.unwrap_or(i32::MAX as i64))
                .prop_map(|n| json!(n))
                .boxed(),
            ShapeKind::Timestamp => (0i64..4_102_444_800)
                .prop_map(|s| {
                    let t = chrono::DateTime::from_timestamp(s, 0).unwrap();
                    json!(t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                })
                .boxed(),
            other => panic!("{}: no strategy for {other:?}", sh.name),
        }
    }

    fn request(op: &str) -> BoxedStrategy<Value> {
        strategy(model().operation(op).unwrap().input.unwrap())
    }

    fn roundtrip(op: &str, req: &Value) -> Result<(), TestCaseError> {
        let violations = model().validate_input(op, req);
        prop_assert!(violations.is_empty(), "not model-valid: {violations:#?}");
        let (server, sdk) = &*ECHO;
        let got = RT
            .block_on(sdk.call(op, req.clone()))
            .map_err(|e| TestCaseError::fail(format!("{op}: {e}")))?;
        let want = with_sdk_defaults(op, req);
        // The echo server answers with the exact bytes it received.
        prop_assert_eq!(&got, &want);
        let seen = server.seen.lock().unwrap();
        prop_assert!(seen.iter().any(|s| s.body == want));
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn create_engagement_invitation(req in request("CreateEngagementInvitation")) {
            roundtrip("CreateEngagementInvitation", &req)?;
        }

        #[test]
        fn create_engagement(req in request("CreateEngagement")) {
            roundtrip("CreateEngagement", &req)?;
        }

        #[test]
        fn create_opportunity(req in request("CreateOpportunity")) {
            roundtrip("CreateOpportunity", &req)?;
        }
    }
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_as_a_transport_error() {
    use aws_sdk_partnercentralselling::config::timeout::TimeoutConfig;
    use std::time::Duration;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            open.push(stream); // keep it open, never answer
        }
    });
    let conf = crate::support::sdk_client(&endpoint, "123456789012")
        .config()
        .to_builder()
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_millis(300))
                .build(),
        )
        .build();
    let sdk = SdkClient::from_client(aws_sdk_partnercentralselling::Client::from_conf(conf));
    let started = std::time::Instant::now();
    let err = sdk
        .call(
            "GetOpportunity",
            json!({"Catalog": "AWS", "Identifier": "O1"}),
        )
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        (err.kind, err.code.as_str()),
        (ErrorKind::Transport, "Timeout"),
        "{err:?}"
    );
    assert!(err.retryable());
}

#[tokio::test]
async fn enum_values_the_sdk_does_not_know_are_sent_verbatim() {
    // Not model-valid on purpose: a value added to the API after this SDK was built.
    let server = Server::start(Canned::ok(json!({}))).await;
    let sdk = client(&server.endpoint).await;
    let req = json!({
        "Catalog": "AWS",
        "ParticipantType": "OBSERVER",
        "Status": ["PENDING", "PARKED"]
    });
    sdk.call("ListEngagementInvitations", req.clone())
        .await
        .unwrap();
    assert_eq!(server.seen()[0].body, req);
}
