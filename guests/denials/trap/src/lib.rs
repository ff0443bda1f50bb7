//! Denial guest: panics. The call fails as a trap quoting the panic; the host keeps serving.
denial_common::denial!("trap", "panics", { panic!("this guest panics on purpose") });
