//! Prints which of the oVirt API's methods vireo implements, per service, and the total.

fn main() {
    let c = vireo_engine::inventory::coverage::coverage();
    let mut by_service: std::collections::BTreeMap<&str, (usize, usize, Vec<&str>)> =
        Default::default();
    for (svc, method, done) in &c.methods {
        let e = by_service.entry(svc).or_default();
        e.1 += 1;
        if *done {
            e.0 += 1;
            e.2.push(method);
        }
    }
    for (svc, (done, all, names)) in &by_service {
        if *done > 0 {
            println!("{svc:<40} {done:>3}/{all:<3} {}", names.join(" "));
        }
    }
    let untouched = by_service.values().filter(|v| v.0 == 0).count();
    println!("{untouched} services with no method implemented yet (they answer 501 with the method's name)");
    println!(
        "implemented: {} of {} methods",
        c.implemented(),
        c.methods.len()
    );
}
