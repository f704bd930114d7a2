//! The SQL Server Browser (MS-SQLR) client: asks the Browser on UDP for the TCP port
//! of a named instance (`protocol = udp`).

use std::net::SocketAddr;
use std::time::Duration;

use extdata_core::ErrorKind;
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// The SQL Server Browser request for `instance` (MS-SQLR `CLNT_UCAST_INST`): `0x04`, the
/// name, a NUL.
pub(crate) fn browser_request(instance: &str) -> Vec<u8> {
    let mut request = Vec::with_capacity(instance.len() + 2);
    request.push(0x04);
    request.extend_from_slice(instance.as_bytes());
    request.push(0x00);
    request
}

/// The TCP port of `instance` in a SQL Server Browser response (MS-SQLR `SVR_RESP`:
/// `0x05`, a little-endian size, then `;`-separated key/value pairs per instance,
/// instances separated by `;;`). Returns what is wrong otherwise.
pub(crate) fn parse_browser_response(response: &[u8], instance: &str) -> Result<u16, String> {
    let [0x05, low, high, data @ ..] = response else {
        return Err("not a SQL Server Browser response".into());
    };
    let size = usize::from(u16::from_le_bytes([*low, *high]));
    let data = data
        .get(..size)
        .ok_or("the SQL Server Browser response is shorter than it says")?;
    // MBCS text; the parts we read (names, digits) are ASCII.
    let text = String::from_utf8_lossy(data);
    let mut found_other = Vec::new();
    for record in text.split(";;").filter(|r| !r.trim().is_empty()) {
        let tokens: Vec<&str> = record.split(';').collect();
        let value = |key: &str| {
            tokens
                .chunks(2)
                .find(|pair| pair[0].eq_ignore_ascii_case(key))
                .and_then(|pair| pair.get(1).copied())
        };
        let name = value("InstanceName");
        if name.is_some_and(|n| !n.eq_ignore_ascii_case(instance)) {
            found_other.push(name.unwrap_or_default().to_owned());
            continue;
        }
        return match value("tcp") {
            Some(port) => match port.trim().parse::<u16>() {
                Ok(port) if port > 0 => Ok(port),
                _ => Err(format!(
                    "the SQL Server Browser gave `{port}` as the TCP port of instance {instance}"
                )),
            },
            None => Err(format!(
                "instance {instance} does not listen on TCP (enable TCP/IP for it in SQL Server Configuration Manager)"
            )),
        };
    }
    if found_other.is_empty() {
        Err("the SQL Server Browser response names no instance".into())
    } else {
        Err(format!(
            "the SQL Server Browser answered for instance(s) {} but not {instance}",
            found_other.join(", ")
        ))
    }
}

/// How long one Browser request waits for its answer before it is sent again (UDP may
/// lose either datagram).
const BROWSER_RETRY: Duration = Duration::from_millis(500);

/// Asks the SQL Server Browser at `host:browser_port` for the TCP port of `instance`,
/// giving up at `deadline`.
pub(crate) async fn resolve_instance_port(
    host: &str,
    browser_port: u16,
    instance: &str,
    deadline: Instant,
) -> Result<u16, (ErrorKind, String)> {
    let addrs: Vec<SocketAddr> = match tokio::time::timeout_at(
        deadline,
        tokio::net::lookup_host((host, browser_port)),
    )
    .await
    {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(e)) => return Err((ErrorKind::Resolve, format!("cannot resolve `{host}`: {e}"))),
        Err(_) => return Err((ErrorKind::Timeout, format!("resolving `{host}` timed out"))),
    };
    let request = browser_request(instance);
    let mut last_problem = format!("`{host}` has no address");
    for addr in addrs {
        let local: SocketAddr = if addr.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = match UdpSocket::bind(local).await {
            Ok(socket) => socket,
            Err(e) => return Err((ErrorKind::Connect, format!("cannot open a UDP socket: {e}"))),
        };
        // `connect` filters datagrams: only the Browser's answer is read.
        if let Err(e) = socket.connect(addr).await {
            last_problem = format!("cannot reach {addr}: {e}");
            continue;
        }
        let mut buffer = vec![0u8; 65_535];
        loop {
            if Instant::now() >= deadline {
                break;
            }
            if let Err(e) = socket.send(&request).await {
                last_problem = format!("cannot send to {addr}: {e}");
                break;
            }
            let wait = (Instant::now() + BROWSER_RETRY).min(deadline);
            match tokio::time::timeout_at(wait, socket.recv(&mut buffer)).await {
                Err(_) => {
                    last_problem = format!(
                        "the SQL Server Browser at {addr} (UDP) did not answer for instance {instance}: is the SQL Server Browser service running, UDP {browser_port} open, and the instance name right?"
                    );
                }
                Ok(Err(e)) => {
                    // ICMP port unreachable surfaces here on the next receive.
                    last_problem =
                        format!("the SQL Server Browser at {addr} (UDP) is not reachable: {e}");
                    break;
                }
                Ok(Ok(len)) => {
                    return parse_browser_response(&buffer[..len], instance)
                        .map_err(|why| (ErrorKind::Connect, why));
                }
            }
        }
    }
    Err((ErrorKind::Connect, last_problem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_request_is_opcode_name_and_nul() {
        assert_eq!(
            browser_request("SQLEXPRESS"),
            b"\x04SQLEXPRESS\x00".to_vec()
        );
    }

    fn response(text: &str) -> Vec<u8> {
        let mut out = vec![0x05];
        out.extend_from_slice(&(text.len() as u16).to_le_bytes());
        out.extend_from_slice(text.as_bytes());
        out
    }

    #[test]
    fn browser_response_gives_the_tcp_port() {
        let reply = response(
            "ServerName;DB1;InstanceName;SQLEXPRESS;IsClustered;No;Version;16.0.1000.6;tcp;49694;;",
        );
        assert_eq!(parse_browser_response(&reply, "SQLEXPRESS"), Ok(49694));
        // Instance names compare without case, as SQL Server does.
        assert_eq!(parse_browser_response(&reply, "sqlexpress"), Ok(49694));
        // Named pipes listed before tcp do not confuse the pairs.
        let reply = response(
            "ServerName;DB1;InstanceName;A;IsClustered;No;Version;15.0;np;\\\\DB1\\pipe\\MSSQL$A\\sql\\query;tcp;1500;;",
        );
        assert_eq!(parse_browser_response(&reply, "A"), Ok(1500));
    }

    #[test]
    fn browser_response_problems_are_explained() {
        let no_tcp = response("ServerName;DB1;InstanceName;A;IsClustered;No;Version;15.0;np;x;;");
        assert!(
            parse_browser_response(&no_tcp, "A")
                .unwrap_err()
                .contains("does not listen on TCP")
        );
        let other = response("ServerName;DB1;InstanceName;B;IsClustered;No;tcp;1;;");
        assert!(
            parse_browser_response(&other, "A")
                .unwrap_err()
                .contains("but not A")
        );
        let zero = response("ServerName;DB1;InstanceName;A;tcp;0;;");
        assert!(parse_browser_response(&zero, "A").is_err());
        let garbage = response("ServerName;DB1;InstanceName;A;tcp;12ab;;");
        assert!(parse_browser_response(&garbage, "A").is_err());
        // Truncated or foreign datagrams never panic.
        for bad in [
            &b""[..],
            b"\x05",
            b"\x05\x10",
            b"\x05\xff\xff;tcp;1",
            b"\x06\x00\x00",
        ] {
            assert!(parse_browser_response(bad, "A").is_err(), "{bad:?}");
        }
        assert!(parse_browser_response(&response(""), "A").is_err());
    }

    async fn fake_browser(
        reply_for: &'static str,
        port: u16,
    ) -> (u16, tokio::task::JoinHandle<Vec<u8>>) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let local = socket.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut buffer = [0u8; 1024];
            let (len, from) = socket.recv_from(&mut buffer).await.expect("request");
            let request = buffer[..len].to_vec();
            let text = format!(
                "ServerName;FAKE;InstanceName;{reply_for};IsClustered;No;Version;16.0.1000.6;tcp;{port};;"
            );
            let mut reply = vec![0x05];
            reply.extend_from_slice(&(text.len() as u16).to_le_bytes());
            reply.extend_from_slice(text.as_bytes());
            socket.send_to(&reply, from).await.expect("reply");
            request
        });
        (local, task)
    }

    #[tokio::test]
    async fn browser_exchange_against_a_fake_browser() {
        let (browser_port, browser) = fake_browser("SQLEXPRESS", 49_694).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        let port = resolve_instance_port("127.0.0.1", browser_port, "SQLEXPRESS", deadline)
            .await
            .expect("resolved");
        assert_eq!(port, 49_694);
        assert_eq!(browser.await.unwrap(), b"\x04SQLEXPRESS\x00".to_vec());

        // A Browser that answers for another instance.
        let (browser_port, _browser) = fake_browser("OTHER", 1).await;
        let (kind, why) = resolve_instance_port("127.0.0.1", browser_port, "SQLEXPRESS", deadline)
            .await
            .unwrap_err();
        assert_eq!(kind, ErrorKind::Connect);
        assert!(why.contains("OTHER"), "{why}");
    }

    #[tokio::test]
    async fn silent_browser_times_out_at_the_deadline() {
        // Bound but never answering (as SQL Server does for an unknown instance).
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let started = std::time::Instant::now();
        let (kind, why) = resolve_instance_port(
            "127.0.0.1",
            port,
            "SQLEXPRESS",
            Instant::now() + Duration::from_millis(1200),
        )
        .await
        .unwrap_err();
        let elapsed = started.elapsed();
        assert_eq!(kind, ErrorKind::Connect);
        assert!(why.contains("did not answer"), "{why}");
        assert!(
            elapsed >= Duration::from_millis(1100) && elapsed < Duration::from_secs(3),
            "{elapsed:?}"
        );
        // The request was sent again while waiting (UDP may lose it).
        let mut buffer = [0u8; 64];
        let mut seen = 0;
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(50), silent.recv_from(&mut buffer)).await
        {
            seen += 1;
        }
        assert!(seen >= 2, "{seen} requests");
    }
}
