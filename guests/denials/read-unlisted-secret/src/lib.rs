//! Denial guest: reads a secret outside its secrets list. The policy must refuse it.
denial_common::denial!(
    "read-unlisted-secret",
    "reads a secret outside its secrets list",
    {
        let _ = denial_common::latch_guest_sdk::secrets::get("root-password")?;
        Ok(Vec::new())
    }
);
