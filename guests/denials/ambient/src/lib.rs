//! Denial guest: reaches for ambient authority — files, environment, arguments, network.
//! It reports what it found as one resource per probe; every probe must come back empty.
denial_common::denial!(
    "ambient",
    "reaches for files, environment, arguments and the network",
    {
        use denial_common::latch_guest_sdk::Resource;
        let probe = |name: &str, found: String| Resource {
            id: name.into(),
            name: found,
            kind: "probe".into(),
            tags: Vec::new(),
            permissions: Vec::new(),
        };
        let file = match std::fs::read("/etc/passwd") {
            Ok(bytes) => format!("read {} bytes", bytes.len()),
            Err(_) => String::new(),
        };
        let dir = match std::fs::read_dir(".") {
            Ok(entries) => format!("{} entries", entries.count()),
            Err(_) => String::new(),
        };
        let env: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
        let args: Vec<String> = std::env::args().collect();
        let net = match std::net::TcpStream::connect("127.0.0.1:22") {
            Ok(_) => "connected".to_string(),
            Err(_) => String::new(),
        };
        Ok(vec![
            probe("file", file),
            probe("dir", dir),
            probe("env", env.join(",")),
            probe("args", args.join(",")),
            probe("net", net),
        ])
    }
);
