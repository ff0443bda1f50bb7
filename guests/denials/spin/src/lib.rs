//! Denial guest: loops forever. The epoch deadline must stop it; the host keeps serving.
denial_common::denial!("spin", "loops forever", {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
});
