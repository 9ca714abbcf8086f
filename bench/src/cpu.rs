//! CPU time spent by each side of a measurement (ward, PostgreSQL, the load generator), read
//! from `/proc`, so a ratio can be explained by who used the shared cores.

/// Linux reports process times in clock ticks of 1/100 s (`USER_HZ`).
const TICKS_PER_SECOND: f64 = 100.0;

/// Cumulative CPU seconds of the three sides at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuSample {
    pub ward: f64,
    pub postgres: f64,
    /// This benchmark's waited-for children: wrk and pgbench once they have exited.
    pub load: f64,
    /// How many processes the postmaster had (backends included).
    pub postgres_processes: usize,
}

impl CpuSample {
    pub fn now(ward_pid: u32, postmaster_pid: Option<u32>) -> CpuSample {
        let ward = stat(ward_pid).map_or(0.0, |s| s.own);
        // Backends that exited were reaped by the postmaster: their time is in its children's.
        let (postgres, postgres_processes) = postmaster_pid.map_or((0.0, 0), |pm| {
            let own = stat(pm).map_or(0.0, |s| s.own + s.children);
            let backends: Vec<f64> = std::fs::read_dir("/proc")
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(stat)
                .filter(|s| s.parent == pm)
                .map(|s| s.own)
                .collect();
            (own + backends.iter().sum::<f64>(), backends.len())
        });
        let load = stat(std::process::id()).map_or(0.0, |s| s.children);
        CpuSample { ward, postgres, load, postgres_processes }
    }

    /// A sample once the backends of a finished run have exited and been reaped (their time
    /// then sits in the postmaster's; one caught between the two reads would count nowhere).
    pub fn settled(ward_pid: u32, postmaster_pid: Option<u32>, processes_before: usize) -> CpuSample {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let sample = CpuSample::now(ward_pid, postmaster_pid);
            if sample.postgres_processes <= processes_before || std::time::Instant::now() > deadline {
                return sample;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// CPU milliseconds per request of each side between `self` (before) and `after`.
    pub fn per_request_ms(&self, after: &CpuSample, requests: f64) -> CpuSample {
        let per = |a: f64, b: f64| if requests > 0.0 { 1000.0 * (b - a) / requests } else { f64::NAN };
        CpuSample {
            ward: per(self.ward, after.ward),
            postgres: per(self.postgres, after.postgres),
            load: per(self.load, after.load),
            postgres_processes: after.postgres_processes,
        }
    }
}

struct Stat {
    parent: u32,
    own: f64,
    children: f64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces or parentheses: fields start after the last ')'.
    let fields: Vec<&str> = text.get(text.rfind(')')? + 1..)?.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    Some(Stat {
        parent: fields.get(1)?.parse().ok()?,
        own: (ticks(11) + ticks(12)) / TICKS_PER_SECOND,
        children: (ticks(13) + ticks(14)) / TICKS_PER_SECOND,
    })
}
