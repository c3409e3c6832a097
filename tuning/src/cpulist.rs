//! The kernel's CPU list format ("0-3,8,10-11"), as in `cpulist`, `thread_siblings_list`
//! and `smp_affinity_list`.

/// Parses a CPU list into sorted, distinct CPU ids. An empty string is an empty list.
pub fn parse(text: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in text
        .trim()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        match part.split_once('-') {
            Some((first, last)) => {
                let first: usize = first.trim().parse().ok()?;
                let last: usize = last.trim().parse().ok()?;
                if last < first || last - first > CPU_RANGE_MAX {
                    return None;
                }
                cpus.extend(first..=last);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    Some(cpus)
}

/// Widest range one list entry may name; bounds what a corrupt file can make us allocate.
const CPU_RANGE_MAX: usize = 1 << 16;

/// Formats CPU ids the way the kernel does, collapsing runs into ranges.
pub fn format(cpus: &[usize]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_singles_parse_sorted() {
        assert_eq!(parse("8,0-3,10-11"), Some(vec![0, 1, 2, 3, 8, 10, 11]));
        assert_eq!(parse("\n"), Some(vec![]));
        assert_eq!(parse("5"), Some(vec![5]));
    }

    #[test]
    fn malformed_lists_are_rejected() {
        assert_eq!(parse("3-1"), None);
        assert_eq!(parse("a"), None);
        assert_eq!(parse("0-999999999"), None);
    }

    #[test]
    fn format_collapses_runs_and_round_trips() {
        let cpus = vec![0, 1, 2, 3, 8, 10, 11, 32];
        assert_eq!(format(&cpus), "0-3,8,10-11,32");
        assert_eq!(parse(&format(&cpus)), Some(cpus));
        assert_eq!(format(&[]), "");
    }
}
