//! Denial guest: allocates without bound. The memory cap must stop it; the host keeps serving.
denial_common::denial!("balloon", "allocates without bound", {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&hoard);
    }
});
