//! Physical network interfaces, their NUMA node and their IRQs with current affinity.

use std::collections::BTreeMap;

use crate::error::TuneError;
use crate::machine::{Irq, Nic};
use crate::sysroot::{self, SysRoot};

pub fn nics(sys: &SysRoot) -> Result<Vec<Nic>, TuneError> {
    let interrupts = match sys.read("proc/interrupts")? {
        Some(text) => parse_interrupts(&text),
        None => BTreeMap::new(),
    };
    let mut nics = Vec::new();
    for name in sys.list("sys/class/net")? {
        let Some(dir) = sys.resolve(&format!("sys/class/net/{name}"))? else {
            continue;
        };
        if dir.starts_with("sys/devices/virtual/") {
            continue;
        }
        let mut numbers = msi_irqs_above(sys, &dir)?;
        if numbers.is_empty() {
            // Drivers without MSI in sysfs still name their vectors after the interface.
            numbers = interrupts
                .iter()
                .filter(|(_, irq_name)| names_interface(irq_name, &name))
                .map(|(number, _)| *number)
                .collect();
        }
        let mut irqs = Vec::with_capacity(numbers.len());
        for number in numbers {
            irqs.push(Irq {
                number,
                name: interrupts.get(&number).cloned(),
                affinity: sys.read_cpulist(&format!("proc/irq/{number}/smp_affinity_list"))?,
            });
        }
        nics.push(Nic {
            operstate: sys.read(&format!("{dir}/operstate"))?,
            numa_node: super::numa_node_above(sys, &dir)?,
            name,
            irqs,
        });
    }
    Ok(nics)
}

/// IRQ numbers listed in `msi_irqs/` of the nearest PCI function above the interface.
fn msi_irqs_above(sys: &SysRoot, start: &str) -> Result<Vec<u32>, TuneError> {
    let mut dir = Some(start);
    while let Some(d) = dir {
        if !d.starts_with("sys/devices/") {
            break;
        }
        let listed = sys.list(&format!("{d}/msi_irqs"))?;
        if !listed.is_empty() {
            let mut numbers: Vec<u32> = listed.iter().filter_map(|n| n.parse().ok()).collect();
            numbers.sort_unstable();
            return Ok(numbers);
        }
        dir = sysroot::parent(d);
    }
    Ok(Vec::new())
}

/// "eth0", "eth0-TxRx-3", "mlx5_comp0@pci:..." style names; "eth01" is not eth0's.
fn names_interface(irq_name: &str, interface: &str) -> bool {
    irq_name.split([',', ' ']).any(|n| {
        n.strip_prefix(interface)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['-', '_', '@', ':']))
    })
}

/// Numbered lines of /proc/interrupts: IRQ number -> action name (the last column).
pub fn parse_interrupts(text: &str) -> BTreeMap<u32, String> {
    let mut lines = text.lines();
    let cpu_columns = lines
        .next()
        .map_or(0, |header| header.split_whitespace().count());
    lines
        .filter_map(|line| {
            let (number, rest) = line.trim_start().split_once(':')?;
            let number: u32 = number.parse().ok()?;
            let fields: Vec<&str> = rest.split_whitespace().skip(cpu_columns).collect();
            // chip name, hardware IRQ and trigger come first; the action name is last.
            let name = if fields.len() >= 3 {
                Some(fields[fields.len() - 1].to_string())
            } else {
                None
            };
            Some((number, name.unwrap_or_default()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interrupt_names_are_the_last_column() {
        let text = "           CPU0       CPU1\n 38:          0       3022 PCI-MSIX-0000:00:03.0   1-edge      virtio2-input.0\nNMI:          0          0   Non-maskable interrupts\n";
        let irqs = parse_interrupts(text);
        assert_eq!(irqs.len(), 1);
        assert_eq!(irqs[&38], "virtio2-input.0");
    }

    #[test]
    fn interface_names_match_whole_prefixes() {
        assert!(names_interface("eth0-TxRx-3", "eth0"));
        assert!(names_interface("eth0", "eth0"));
        assert!(!names_interface("eth01-TxRx-0", "eth0"));
        assert!(!names_interface("nvme0q1", "eth0"));
    }
}
