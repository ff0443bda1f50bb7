//! Denial guest: reaches a target outside its allow list. The policy must refuse the call
//! before anything is sent.
denial_common::denial!(
    "reach-unlisted",
    "reaches a target outside its allow list",
    {
        // 203.0.113.0/24 is TEST-NET-3: never a real host, and the policy refuses it first.
        let target = denial_common::latch_guest_sdk::Target {
            host: "203.0.113.9".into(),
            port: 22,
            user: None,
        };
        denial_common::latch_guest_sdk::exec(&target, &["id"])?;
        Ok(Vec::new())
    }
);
