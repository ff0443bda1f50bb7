//! Denial guest: blocks in a host call forever. The wall-clock deadline must stop it.
denial_common::denial!("sleep", "blocks in a host call forever", {
    std::thread::sleep(std::time::Duration::from_secs(24 * 3600));
    Ok(Vec::new())
});
