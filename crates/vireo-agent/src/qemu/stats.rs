//! Figures from /proc and /sys: the host's CPU, memory and load, and a QEMU process's CPU
//! time and resident memory. Rates need two samples; the caller keeps the previous one.

use std::time::Instant;

/// Jiffies per second: USER_HZ, fixed at 100 on Linux for everything /proc reports.
const USER_HZ: f64 = 100.0;

/// Aggregate CPU counters of `/proc/stat`'s first line.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTimes {
    pub user: u64,
    pub system: u64,
    pub idle: u64,
    pub total: u64,
}

pub fn parse_proc_stat(text: &str) -> (CpuTimes, i64) {
    let mut cpu = CpuTimes::default();
    let mut btime = 0;
    for line in text.lines() {
        let mut f = line.split_whitespace();
        match f.next() {
            Some("cpu") => {
                let v: Vec<u64> = f.filter_map(|x| x.parse().ok()).collect();
                // user nice system idle iowait irq softirq steal …
                let get = |i: usize| v.get(i).copied().unwrap_or(0);
                cpu.user = get(0) + get(1);
                cpu.system = get(2) + get(5) + get(6);
                cpu.idle = get(3) + get(4);
                cpu.total = v.iter().take(8).sum();
            }
            Some("btime") => btime = f.next().and_then(|x| x.parse().ok()).unwrap_or(0),
            _ => {}
        }
    }
    (cpu, btime)
}

/// Percentages user/system/idle between two samples (all idle when nothing elapsed).
pub fn cpu_percent(prev: CpuTimes, now: CpuTimes) -> (f64, f64, f64) {
    let total = now.total.saturating_sub(prev.total) as f64;
    if total <= 0.0 {
        return (0.0, 0.0, 100.0);
    }
    let pct = |a: u64, b: u64| (a.saturating_sub(b) as f64 * 100.0 / total).clamp(0.0, 100.0);
    (
        pct(now.user, prev.user),
        pct(now.system, prev.system),
        pct(now.idle, prev.idle),
    )
}

/// `/proc/meminfo` in bytes, by key (`MemTotal`, `MemAvailable`, `SwapFree`, …).
pub fn parse_meminfo(text: &str) -> std::collections::HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let kb: u64 = v.split_whitespace().next()?.parse().ok()?;
            Some((k.trim().to_string(), kb * 1024))
        })
        .collect()
}

pub fn parse_loadavg_5m(text: &str) -> f64 {
    text.split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0.0)
}

/// A process's CPU time (utime + stime, in jiffies) from `/proc/<pid>/stat`, and whether it
/// is a zombie (dead, waiting to be reaped: not running any more).
pub fn parse_pid_stat(text: &str) -> Option<(u64, bool)> {
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let state = f.first()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime, *state == "Z" || *state == "X"))
}

/// True while `pid` is a live (non-zombie) process.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(t) => parse_pid_stat(&t).is_some_and(|(_, zombie)| !zombie),
        Err(_) => false,
    }
}

pub fn pid_rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| parse_meminfo(&t).get("VmRSS").copied())
        .unwrap_or(0)
}

/// The previous CPU sample of a process, to turn CPU time into a percentage.
#[derive(Debug, Clone, Copy)]
pub struct PidSample {
    pub jiffies: u64,
    pub at: Instant,
}

/// CPU use since `prev`, as a percentage of the VM's vCPUs (100 = all vCPUs busy).
pub fn pid_cpu_percent(pid: u32, vcpus: u32, prev: &mut Option<PidSample>) -> f64 {
    let Some((jiffies, _)) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|t| parse_pid_stat(&t))
    else {
        return 0.0;
    };
    let now = PidSample {
        jiffies,
        at: Instant::now(),
    };
    let pct = match prev {
        Some(p) if now.at > p.at => {
            let secs = now.at.duration_since(p.at).as_secs_f64();
            let used = jiffies.saturating_sub(p.jiffies) as f64 / USER_HZ;
            (used / secs * 100.0 / f64::from(vcpus.max(1))).clamp(0.0, 100.0)
        }
        _ => 0.0,
    };
    *prev = Some(now);
    pct
}

/// Bytes a tap device has moved, from the guest's point of view (rx, tx): the host side of
/// a tap transmits what the guest receives.
pub fn tap_bytes(ifname: &str) -> (u64, u64) {
    let read = |f: &str| {
        std::fs::read_to_string(format!("/sys/class/net/{ifname}/statistics/{f}"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    (read("tx_bytes"), read("rx_bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let (cpu, btime) =
            parse_proc_stat("cpu  100 5 50 800 10 1 2 0 0 0\ncpu0 1 2 3 4\nbtime 1700000000\n");
        assert_eq!(
            cpu,
            CpuTimes {
                user: 105,
                system: 53,
                idle: 810,
                total: 968
            }
        );
        assert_eq!(btime, 1_700_000_000);
        let later = CpuTimes {
            user: 205,
            system: 53,
            idle: 910,
            total: 1168,
        };
        let (u, s, i) = cpu_percent(cpu, later);
        assert_eq!((u, s, i), (50.0, 0.0, 50.0));
        let m = parse_meminfo("MemTotal:       1000 kB\nMemAvailable:    500 kB\n");
        assert_eq!(m["MemTotal"], 1_024_000);
        assert_eq!(parse_loadavg_5m("0.10 0.25 0.30 1/100 42"), 0.25);
        let stat = "42 (qemu (x) y) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 3 0 100 0 0";
        assert_eq!(parse_pid_stat(stat), Some((10, false)));
        assert_eq!(
            parse_pid_stat(&stat.replace(") S", ") Z")),
            Some((10, true))
        );
    }

    #[test]
    fn this_process_is_alive() {
        assert!(pid_alive(std::process::id()));
        assert!(pid_rss_bytes(std::process::id()) > 0);
    }
}
