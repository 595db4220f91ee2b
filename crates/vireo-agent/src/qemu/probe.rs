//! Which accelerator really runs guests here.
//!
//! `/dev/kvm` opening is no proof: on nested or paravirtual hosts (e.g. a `kvm_pvm` host
//! kernel) KVM runs a few real-mode instructions and then hangs the moment a guest turns on
//! paging and long mode, which every Linux guest does in its first milliseconds. So the probe
//! guest does what a kernel does first: real mode → 4-level paging → long mode, touches 16 MiB
//! of memory page by page, runs a short compute loop, and reports through the `isa-debug-exit`
//! port. It also writes one letter per stage to an `isa-debugcon` port so that a probe which
//! hangs says where.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::process::Command;
use vireo_agent_proto::{Accel, AccelKind};

/// What the operator asked for (`--accel kvm|tcg|auto`); the agent's own type.
pub use crate::config::AccelChoice;

/// The value the probe writes to `isa-debug-exit` when every stage ran and the memory sum was
/// right; QEMU exits with `(value << 1) | 1`.
const PROBE_OK: u8 = 0x2A;
const PROBE_BAD_SUM: u8 = 0x15;
/// Where the firmware is mapped: the last 64 KiB below 1 MiB (and aliased at the top of 4 GiB,
/// where the CPU's reset vector points).
const BIOS_BASE: u32 = 0xF_0000;
const DEBUGCON_PORT: u16 = 0x402;
const EXIT_PORT: u8 = 0xF4;

/// The probe firmware: a 64 KiB `-bios` image, built here rather than shipped so that every
/// byte is explained.
pub fn firmware() -> Vec<u8> {
    let mut c: Vec<u8> = Vec::with_capacity(512);
    let stage = |c: &mut Vec<u8>, letter: u8, wide: bool| {
        // mov dx, 0x402 (in 64-bit code the 0x66 prefix makes it 16-bit); mov al, letter;
        // out dx, al
        if wide {
            c.push(0x66);
        }
        c.extend_from_slice(&[0xBA, DEBUGCON_PORT as u8, (DEBUGCON_PORT >> 8) as u8]);
        c.extend_from_slice(&[0xB0, letter, 0xEE]);
    };

    // ---- 16-bit real mode, CS base 0xF0000 ----
    c.push(0xFA); // cli
    stage(&mut c, b'R', false);
    c.extend_from_slice(&[0x31, 0xC0]); // xor ax, ax
    c.extend_from_slice(&[0x8E, 0xD8]); // mov ds, ax
    c.extend_from_slice(&[0x8E, 0xD0]); // mov ss, ax
    c.extend_from_slice(&[0xBC, 0x00, 0x70]); // mov sp, 0x7000
                                              // Page tables in low RAM: PML4 at 0x1000 → PDPT at 0x2000 → PD at 0x3000.
    c.extend_from_slice(&[0x66, 0xC7, 0x06, 0x00, 0x10, 0x03, 0x20, 0x00, 0x00]); // mov dword [0x1000], 0x2003
    c.extend_from_slice(&[0x66, 0xC7, 0x06, 0x04, 0x10, 0x00, 0x00, 0x00, 0x00]); // mov dword [0x1004], 0
    c.extend_from_slice(&[0x66, 0xC7, 0x06, 0x00, 0x20, 0x03, 0x30, 0x00, 0x00]); // mov dword [0x2000], 0x3003
    c.extend_from_slice(&[0x66, 0xC7, 0x06, 0x04, 0x20, 0x00, 0x00, 0x00, 0x00]); // mov dword [0x2004], 0
                                                                                  // PD: 16 identity-mapped 2 MiB pages (32 MiB).
    c.extend_from_slice(&[0xBF, 0x00, 0x30]); // mov di, 0x3000
    c.extend_from_slice(&[0x66, 0xB8, 0x83, 0x00, 0x00, 0x00]); // mov eax, 0x83 (present|rw|2M)
    c.extend_from_slice(&[0xB9, 0x10, 0x00]); // mov cx, 16
    let pd_loop = c.len();
    c.extend_from_slice(&[0x66, 0x89, 0x05]); // mov [di], eax
    c.extend_from_slice(&[0x66, 0xC7, 0x45, 0x04, 0x00, 0x00, 0x00, 0x00]); // mov dword [di+4], 0
    c.extend_from_slice(&[0x66, 0x05, 0x00, 0x00, 0x20, 0x00]); // add eax, 0x200000
    c.extend_from_slice(&[0x83, 0xC7, 0x08]); // add di, 8
    c.extend_from_slice(&[0xE2, rel8(c.len() + 2, pd_loop)]); // loop pd_loop
    let lgdt_operand = c.len() + 5;
    c.extend_from_slice(&[0x2E, 0x66, 0x0F, 0x01, 0x16, 0x00, 0x00]); // lgdt cs:[gdtptr] (patched)
    c.extend_from_slice(&[0x0F, 0x20, 0xE0]); // mov eax, cr4
    c.extend_from_slice(&[0x66, 0x83, 0xC8, 0x20]); // or eax, 0x20 (PAE)
    c.extend_from_slice(&[0x0F, 0x22, 0xE0]); // mov cr4, eax
    c.extend_from_slice(&[0x66, 0xB8, 0x00, 0x10, 0x00, 0x00]); // mov eax, 0x1000
    c.extend_from_slice(&[0x0F, 0x22, 0xD8]); // mov cr3, eax
    c.extend_from_slice(&[0x66, 0xB9, 0x80, 0x00, 0x00, 0xC0]); // mov ecx, 0xC0000080 (EFER)
    c.extend_from_slice(&[0x0F, 0x32]); // rdmsr
    c.extend_from_slice(&[0x66, 0x0D, 0x00, 0x01, 0x00, 0x00]); // or eax, 0x100 (LME)
    c.extend_from_slice(&[0x0F, 0x30]); // wrmsr
    c.extend_from_slice(&[0x0F, 0x20, 0xC0]); // mov eax, cr0
    c.extend_from_slice(&[0x66, 0x0D, 0x01, 0x00, 0x00, 0x80]); // or eax, 0x80000001 (PG|PE)
    c.extend_from_slice(&[0x0F, 0x22, 0xC0]); // mov cr0, eax  ← broken KVMs hang here
    let ljmp_target = c.len() + 2;
    c.extend_from_slice(&[0x66, 0xEA, 0, 0, 0, 0, 0x08, 0x00]); // jmp dword 0x08:start64 (patched)

    // ---- 64-bit long mode ----
    let start64 = c.len();
    c.extend_from_slice(&[0x66, 0xB8, 0x10, 0x00]); // mov ax, 0x10
    c.extend_from_slice(&[0x8E, 0xD8, 0x8E, 0xC0, 0x8E, 0xD0]); // mov ds/es/ss, ax
    stage(&mut c, b'L', true);
    // Touch one qword in each 4 KiB page of 1..17 MiB and sum them back: faults in 4096 pages.
    c.extend_from_slice(&[0x48, 0xC7, 0xC7, 0x00, 0x00, 0x10, 0x00]); // mov rdi, 0x100000
    c.extend_from_slice(&[0x48, 0xC7, 0xC1, 0x00, 0x10, 0x00, 0x00]); // mov rcx, 4096
    c.extend_from_slice(&[0x48, 0x31, 0xC0]); // xor rax, rax
    let touch_loop = c.len();
    c.extend_from_slice(&[0x48, 0x89, 0x0F]); // mov [rdi], rcx
    c.extend_from_slice(&[0x48, 0x03, 0x07]); // add rax, [rdi]
    c.extend_from_slice(&[0x48, 0x81, 0xC7, 0x00, 0x10, 0x00, 0x00]); // add rdi, 4096
    c.extend_from_slice(&[0x48, 0xFF, 0xC9]); // dec rcx
    c.extend_from_slice(&[0x75, rel8(c.len() + 2, touch_loop)]); // jnz touch_loop
    c.extend_from_slice(&[0x48, 0x89, 0xC6]); // mov rsi, rax (keep the sum)
    stage(&mut c, b'M', true);
    // Two million rounds of xorshift64: a few ms natively, far longer when every instruction
    // is emulated.
    c.extend_from_slice(&[0x48, 0xC7, 0xC1, 0x80, 0x84, 0x1E, 0x00]); // mov rcx, 2000000
    c.extend_from_slice(&[0x48, 0xBA]); // mov rdx, imm64
    c.extend_from_slice(&88172645463325252u64.to_le_bytes());
    let xs_loop = c.len();
    c.extend_from_slice(&[0x48, 0x89, 0xD3, 0x48, 0xC1, 0xE3, 0x0D, 0x48, 0x31, 0xDA]); // rbx=rdx; rbx<<=13; rdx^=rbx
    c.extend_from_slice(&[0x48, 0x89, 0xD3, 0x48, 0xC1, 0xEB, 0x07, 0x48, 0x31, 0xDA]); // rbx=rdx; rbx>>=7; rdx^=rbx
    c.extend_from_slice(&[0x48, 0x89, 0xD3, 0x48, 0xC1, 0xE3, 0x11, 0x48, 0x31, 0xDA]); // rbx=rdx; rbx<<=17; rdx^=rbx
    c.extend_from_slice(&[0x48, 0xFF, 0xC9]); // dec rcx
    c.extend_from_slice(&[0x75, rel8(c.len() + 2, xs_loop)]); // jnz xs_loop
    stage(&mut c, b'C', true);
    // The sum of 1..=4096 is 0x800800: anything else means memory did not hold what was written.
    c.extend_from_slice(&[0x48, 0x89, 0xF0]); // mov rax, rsi
    c.extend_from_slice(&[0x48, 0xC7, 0xC3, 0x00, 0x08, 0x80, 0x00]); // mov rbx, 0x800800
    c.extend_from_slice(&[0x48, 0x39, 0xD8]); // cmp rax, rbx
    c.extend_from_slice(&[0x75, 0x04]); // jne +4
    c.extend_from_slice(&[0xB0, PROBE_OK, 0xE6, EXIT_PORT]); // mov al, OK; out 0xf4, al
    c.extend_from_slice(&[0xB0, PROBE_BAD_SUM, 0xE6, EXIT_PORT]); // mov al, BAD; out 0xf4, al
    c.extend_from_slice(&[0xF4, 0xEB, 0xFD]); // hlt; jmp hlt

    // ---- GDT: null, 64-bit code (0x08), data (0x10); then its pointer ----
    while !c.len().is_multiple_of(8) {
        c.push(0x90);
    }
    let gdt = c.len();
    c.extend_from_slice(&0u64.to_le_bytes());
    c.extend_from_slice(&0x00AF_9A00_0000_FFFFu64.to_le_bytes());
    c.extend_from_slice(&0x00CF_9200_0000_FFFFu64.to_le_bytes());
    let gdtptr = c.len();
    c.extend_from_slice(&23u16.to_le_bytes());
    c.extend_from_slice(&(BIOS_BASE + gdt as u32).to_le_bytes());

    c[lgdt_operand..lgdt_operand + 2].copy_from_slice(&(gdtptr as u16).to_le_bytes());
    c[ljmp_target..ljmp_target + 4].copy_from_slice(&(BIOS_BASE + start64 as u32).to_le_bytes());

    let mut image = vec![0xF4u8; 0x1_0000];
    image[..c.len()].copy_from_slice(&c);
    // Reset vector (0xFFFFFFF0 = image offset 0xFFF0): jmp far 0xF000:0000.
    image[0xFFF0..0xFFF5].copy_from_slice(&[0xEA, 0x00, 0x00, 0x00, 0xF0]);
    image
}

/// A backward (or forward) 8-bit jump from the end of the jump instruction to `target`.
fn rel8(next: usize, target: usize) -> u8 {
    let d = target as isize - next as isize;
    assert!((-128..=127).contains(&d), "jump out of range");
    d as i8 as u8
}

/// The outcome of one probe run.
#[derive(Debug, Clone)]
pub struct ProbeRun {
    pub ok: bool,
    pub elapsed: Duration,
    /// Stages the guest reached: R (real mode), L (long mode), M (memory), C (compute).
    pub stages: String,
    pub detail: String,
}

/// Runs the probe guest once under `accel` (`kvm` or `tcg`).
pub async fn run(qemu: &Path, accel: &str, work: &Path, timeout: Duration) -> ProbeRun {
    let _ = std::fs::create_dir_all(work);
    let bios = work.join("probe-bios.bin");
    let debug = work.join(format!("probe-{accel}.log"));
    let _ = std::fs::remove_file(&debug);
    if let Err(e) = std::fs::write(&bios, firmware()) {
        return ProbeRun {
            ok: false,
            elapsed: Duration::ZERO,
            stages: String::new(),
            detail: format!("cannot write the probe firmware: {e}"),
        };
    }
    let started = Instant::now();
    let child = Command::new(qemu)
        .args([
            "-accel",
            accel,
            "-machine",
            "q35",
            "-m",
            "64",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
        ])
        .arg("-bios")
        .arg(&bios)
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=1"])
        .arg("-chardev")
        .arg(format!(
            "file,id=probe,path={}",
            super::argv::opt_escape(&debug.to_string_lossy())
        ))
        .args(["-device", "isa-debugcon,iobase=0x402,chardev=probe"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            return ProbeRun {
                ok: false,
                elapsed: Duration::ZERO,
                stages: String::new(),
                detail: format!("cannot run {}: {e}", qemu.display()),
            }
        }
    };
    let result = tokio::time::timeout(timeout, child.wait_with_output()).await;
    let elapsed = started.elapsed();
    let stages = std::fs::read_to_string(&debug).unwrap_or_default();
    let ms = elapsed.as_millis();
    match result {
        Err(_) => {
            // The child was dropped with the timeout future: kill_on_drop ends it.
            let detail = format!(
                "{accel} probe guest did not finish within {} ms (stages reached: {}): {}",
                timeout.as_millis(),
                if stages.is_empty() { "none" } else { &stages },
                hang_hint(&stages)
            );
            ProbeRun {
                ok: false,
                elapsed,
                stages,
                detail,
            }
        }
        Ok(Err(e)) => ProbeRun {
            ok: false,
            elapsed,
            stages,
            detail: format!("{accel} probe: {e}"),
        },
        Ok(Ok(out)) => {
            let code = out.status.code();
            let stderr = String::from_utf8_lossy(&out.stderr);
            let stderr = stderr
                .lines()
                .filter(|l| !l.contains("warning:"))
                .collect::<Vec<_>>()
                .join("; ");
            if code == Some(i32::from(PROBE_OK) << 1 | 1) {
                ProbeRun { ok: true, elapsed, stages, detail: format!("{accel} probe guest ran to isa-debug-exit in {ms} ms (real mode, long mode, 16 MiB touched, 2M-round loop)") }
            } else if code == Some(i32::from(PROBE_BAD_SUM) << 1 | 1) {
                ProbeRun {
                    ok: false,
                    elapsed,
                    stages,
                    detail: format!("{accel} probe guest ran but read back wrong memory ({ms} ms)"),
                }
            } else {
                ProbeRun {
                    ok: false,
                    elapsed,
                    stages,
                    detail: format!(
                        "{accel} probe guest failed after {ms} ms: exit {code:?} {stderr}"
                    ),
                }
            }
        }
    }
}

fn hang_hint(stages: &str) -> &'static str {
    match stages {
        "" => "no guest instruction completed",
        "R" => "hangs entering paging/long mode, as Linux guests would",
        "RL" => "hangs touching guest memory",
        "RLM" => "guest code runs far too slowly",
        _ => "guest did not reach the exit port",
    }
}

/// Decides the accelerator: KVM only when the probe guest really ran under it.
pub async fn choose(choice: AccelChoice, qemu: &Path, work: &Path) -> anyhow::Result<Accel> {
    const TIMEOUT: Duration = Duration::from_secs(2);
    let kvm_dev = Path::new("/dev/kvm");
    match choice {
        AccelChoice::Tcg => Ok(Accel {
            kind: AccelKind::Tcg,
            detail: "--accel tcg: software emulation, KVM not probed".into(),
        }),
        AccelChoice::Kvm => {
            if std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(kvm_dev)
                .is_err()
            {
                anyhow::bail!("--accel kvm, but /dev/kvm cannot be opened");
            }
            let probe = run(qemu, "kvm", work, TIMEOUT).await;
            let verdict = if probe.ok { "" } else { " — guests may hang" };
            Ok(Accel {
                kind: AccelKind::Kvm,
                detail: format!("--accel kvm; {}{verdict}", probe.detail),
            })
        }
        AccelChoice::Auto => {
            let kvm_why = match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(kvm_dev)
            {
                Err(e) => format!("/dev/kvm: {e}"),
                Ok(_) => {
                    let probe = run(qemu, "kvm", work, TIMEOUT).await;
                    if probe.ok {
                        return Ok(Accel {
                            kind: AccelKind::Kvm,
                            detail: probe.detail,
                        });
                    }
                    format!("/dev/kvm opens but {}", probe.detail)
                }
            };
            // Check the fallback too, so that a host where nothing runs says so at start.
            let tcg = run(qemu, "tcg", work, Duration::from_secs(20)).await;
            if !tcg.ok {
                anyhow::bail!("no accelerator runs guests here: {kvm_why}; {}", tcg.detail);
            }
            Ok(Accel {
                kind: AccelKind::Tcg,
                detail: format!("{kvm_why}; using TCG: {}", tcg.detail),
            })
        }
    }
}
