//! Throughput of the emulator's hot path: GetEngagementInvitation over loopback with many
//! concurrent keep-alive connections (raw HTTP/1.1, a fixed fake SigV4 header), quotas off.
//!
//! Run: `cargo bench --bench emulator` (prints requests/s; the target is ≥ 5,000 on 2 cores).

use cosell::emulator::{start, EmulatorConfig, Quotas};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const CONNECTIONS: usize = 64;
const SECONDS: u64 = 5;
const AUTH: &str = "AWS4-HMAC-SHA256 Credential=111111111111/20261122/us-east-1/partnercentral-selling/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0000000000000000000000000000000000000000000000000000000000000000";

fn request(addr: &str, op: &str, body: &str, account: &str) -> Vec<u8> {
    format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-amz-json-1.0\r\nX-Amz-Target: AWSPartnerCentralSelling.{op}\r\nAuthorization: {}\r\nContent-Length: {}\r\n\r\n{body}",
        AUTH.replace("111111111111", account),
        body.len()
    )
    .into_bytes()
}

/// Send one request on a keep-alive connection and return (status, body).
async fn roundtrip(
    conn: &mut BufReader<TcpStream>,
    req: &[u8],
    line: &mut String,
    body: &mut Vec<u8>,
) -> std::io::Result<u16> {
    conn.get_mut().write_all(req).await?;
    line.clear();
    conn.read_line(line).await?;
    let status: u16 = line.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut len = 0usize;
    loop {
        line.clear();
        conn.read_line(line).await?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    body.resize(len, 0);
    conn.read_exact(body).await?;
    Ok(status)
}

async fn connect(addr: &str) -> BufReader<TcpStream> {
    let s = TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).unwrap();
    BufReader::new(s)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let emu = start(
            EmulatorConfig {
                quotas: Quotas::None,
                ..EmulatorConfig::default()
            },
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let addr = emu.url().trim_start_matches("http://").to_string();
        let (mut line, mut body) = (String::new(), Vec::new());
        let mut c = connect(&addr).await;
        let req = request(&addr, "CreateEngagement", r#"{"Catalog":"Sandbox","ClientToken":"bench","Title":"Bench"}"#, "111111111111");
        assert_eq!(roundtrip(&mut c, &req, &mut line, &mut body).await.unwrap(), 200);
        let eng: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let invite = format!(
            r#"{{"Catalog":"Sandbox","ClientToken":"bench-inv","EngagementIdentifier":"{}","Invitation":{{"Message":"Join us","Receiver":{{"Account":{{"AwsAccountId":"222222222222"}}}},"Payload":{{"OpportunityInvitation":{{"ReceiverResponsibilities":["Distributor"],"Customer":{{"CompanyName":"Acme","CountryCode":"US","Industry":"Aerospace","WebsiteUrl":"https://acme.example.com"}},"Project":{{"BusinessProblem":"They need a much better data platform for analytics","Title":"Data platform","TargetCompletionDate":"2027-01-31","ExpectedCustomerSpend":[{{"Amount":"1000","CurrencyCode":"USD","Frequency":"Monthly","TargetCompany":"AWS"}}]}}}}}}}}}}"#,
            eng["Id"].as_str().unwrap()
        );
        let req = request(&addr, "CreateEngagementInvitation", &invite, "111111111111");
        assert_eq!(roundtrip(&mut c, &req, &mut line, &mut body).await.unwrap(), 200);
        let inv: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let get = request(
            &addr,
            "GetEngagementInvitation",
            &format!(r#"{{"Catalog":"Sandbox","Identifier":"{}"}}"#, inv["Id"].as_str().unwrap()),
            "222222222222",
        );

        let done = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..CONNECTIONS {
            let (addr, get, done, count, errors) =
                (addr.clone(), get.clone(), done.clone(), count.clone(), errors.clone());
            tasks.push(tokio::spawn(async move {
                let mut c = connect(&addr).await;
                let (mut line, mut body) = (String::new(), Vec::new());
                while !done.load(Ordering::Relaxed) {
                    match roundtrip(&mut c, &get, &mut line, &mut body).await {
                        Ok(200) => count.fetch_add(1, Ordering::Relaxed),
                        _ => errors.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }));
        }
        // warm up, then measure
        tokio::time::sleep(Duration::from_millis(500)).await;
        let start_count = count.load(Ordering::Relaxed);
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(SECONDS)).await;
        let n = count.load(Ordering::Relaxed) - start_count;
        let elapsed = t0.elapsed().as_secs_f64();
        done.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = t.await;
        }
        println!(
            "emulator GetEngagementInvitation: {:.0} requests/s ({n} in {elapsed:.2}s over {CONNECTIONS} keep-alive connections, {} errors)",
            n as f64 / elapsed,
            errors.load(Ordering::Relaxed)
        );
        emu.shutdown().await.unwrap();
    });
}
