//! The amdgpu driver's `gpu_metrics` table (`/sys/class/drm/cardN/device/gpu_metrics`): a binary
//! structure in native byte order (little-endian on every host amdgpu runs on), one layout per
//! (format, content) revision. Only what energy needs is read: the header, the energy
//! accumulator and the socket power. No libdrm or ROCm: the offsets below are those of the
//! kernel's structure definitions, with natural C alignment (the header declares no packing).
//!
//! Sources (Linux, `drivers/gpu/drm/amd/include/kgd_pp_interface.h`):
//! - `struct metrics_table_header`: `uint16_t structure_size` at 0, `uint8_t format_revision` at
//!   2, `uint8_t content_revision` at 3.
//! - `gpu_metrics_v1_1`, `_v1_2`, `_v1_3`: `uint16_t average_socket_power` (W) at 22, then
//!   `uint64_t energy_accumulator` at 24 (the header, six temperatures and three activities
//!   take 22 bytes; the u64 is aligned to 24).
//! - `gpu_metrics_v1_4`: `curr_socket_power` (W) at 10, `vcn_activity[NUM_VCN = 4]` at 16,
//!   `energy_accumulator` at 24 ("Energy (15.259uJ (2^-16) units)").
//! - `gpu_metrics_v1_5`: `vcn_activity[4]` at 16, `jpeg_activity[NUM_JPEG_ENG = 32]` at 24,
//!   `energy_accumulator` at 88; structure size 360.
//! - `gpu_metrics_v1_6`: first released with `vcn_activity`/`jpeg_activity` like v1_5
//!   (energy at 88, size 384), then changed to carry per-partition `xcp_stats` instead, with
//!   `energy_accumulator` at 16. The structure size tells the two apart.
//! - `gpu_metrics_v1_7`, `_v1_8`: `uint64_t mem_max_bandwidth` at 16, `energy_accumulator` at 24.
//!
//! Offsets were checked by compiling the kernel's definitions (`offsetof`, `sizeof`). Other
//! revisions (v1_0, unaligned; v2_x and v3_x, APUs, with no energy accumulator; v1_9, a list of
//! attributes) have no energy counter this parser knows: the source integrates hwmon power.
//!
//! The kernel fills a table with 0xFF before the firmware's values are copied in
//! (`smu_cmn_init_soft_gpu_metrics`), so an all-ones accumulator was never filled; some
//! drivers (`smu_v13_0_7_ppt.c`, `smu_v14_0_2_ppt.c`) write `UINT_MAX` when the firmware does
//! not report energy. Both are "no counter". On MI250X (`aldebaran_ppt.c`) only the primary
//! die reports power and energy, for the whole package; the secondary die's table holds 0 for
//! both ("Valid power data is available only from primary die").

/// What one read of a `gpu_metrics` file says about energy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metrics {
    pub format: u8,
    pub content: u8,
    pub size: u16,
    pub energy: Energy,
    /// Socket power, watts, where the revision has it (0xFFFF: not filled).
    pub socket_power_w: Option<u16>,
}

/// The energy accumulator of one table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Energy {
    /// A cumulative count, in units of 2^-16 J (15.259 µJ).
    Counter(u64),
    /// All ones or `UINT_MAX`: the driver did not fill it.
    NotFilled,
    /// This revision has no energy accumulator this parser knows.
    Absent,
}

/// One count of the energy accumulator is 2^-16 J: 10^6 / 65536 µJ = 15625 / 1024 µJ.
pub fn counts_to_uj(counts: u64) -> u64 {
    (counts as u128 * 15625 / 1024) as u64
}

/// (energy offset, socket power offset) of a revision, or `None` for one without a counter.
fn layout(format: u8, content: u8, size: u16) -> Option<(usize, usize)> {
    match (format, content) {
        (1, 1..=3) => Some((24, 22)),
        (1, 4) => Some((24, 10)),
        (1, 5) => Some((88, 10)),
        (1, 6) if size == 384 => Some((88, 10)),
        (1, 6) => Some((16, 10)),
        (1, 7 | 8) => Some((24, 10)),
        _ => None,
    }
}

/// Parses a table. Errors say what is wrong with it (the caller names the file).
pub fn parse(bytes: &[u8]) -> Result<Metrics, String> {
    if bytes.len() < 4 {
        return Err(format!(
            "{} bytes, shorter than the 4-byte header",
            bytes.len()
        ));
    }
    let size = u16::from_le_bytes([bytes[0], bytes[1]]);
    let (format, content) = (bytes[2], bytes[3]);
    if (size as usize) < 4 || size as usize > bytes.len() {
        return Err(format!(
            "header says {size} bytes (format {format}, content {content}) but {} were read",
            bytes.len()
        ));
    }
    let table = &bytes[..size as usize];
    let Some((energy_at, power_at)) = layout(format, content, size) else {
        return Ok(Metrics {
            format,
            content,
            size,
            energy: Energy::Absent,
            socket_power_w: None,
        });
    };
    let u64_at = |at: usize| {
        table
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0xff; 8])))
    };
    let u16_at = |at: usize| {
        table
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let raw = u64_at(energy_at).ok_or_else(|| {
        format!("v{format}_{content} table of {size} bytes has no room for its energy counter")
    })?;
    let energy = match raw {
        u64::MAX | 0xFFFF_FFFF => Energy::NotFilled,
        n => Energy::Counter(n),
    };
    Ok(Metrics {
        format,
        content,
        size,
        energy,
        socket_power_w: u16_at(power_at).filter(|&w| w != u16::MAX),
    })
}

/// Test and fixture support: a table of `size` bytes filled with 0xFF (as the kernel starts
/// one), with the header, the energy counter and the power written at the revision's offsets.
pub fn build(format: u8, content: u8, size: u16, energy: u64, power_w: u16) -> Vec<u8> {
    let mut t = vec![0xffu8; size as usize];
    t[0..2].copy_from_slice(&size.to_le_bytes());
    t[2] = format;
    t[3] = content;
    if let Some((e, p)) = layout(format, content, size) {
        t[e..e + 8].copy_from_slice(&energy.to_le_bytes());
        t[p..p + 2].copy_from_slice(&power_w.to_le_bytes());
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_put_the_counter_where_the_kernel_does() {
        // Sizes from the kernel's definitions: v1_3 120, v1_4 288, v1_5 360, first v1_6 384.
        for (f, c, size, at) in [
            (1, 3, 120, 24),
            (1, 4, 288, 24),
            (1, 5, 360, 88),
            (1, 6, 384, 88),
            (1, 6, 1664, 16),
            (1, 7, 2208, 24),
            (1, 8, 3360, 24),
        ] {
            let t = build(f, c, size, 0x0102_0304_0506_0708, 350);
            assert_eq!(
                u64::from_le_bytes(t[at..at + 8].try_into().unwrap()),
                0x0102_0304_0506_0708
            );
            let m = parse(&t).unwrap();
            assert_eq!(m.energy, Energy::Counter(0x0102_0304_0506_0708), "v{f}_{c}");
            assert_eq!(m.socket_power_w, Some(350));
            assert_eq!((m.format, m.content, m.size), (f, c, size));
        }
    }

    #[test]
    fn unfilled_counters_and_unknown_revisions() {
        assert_eq!(
            parse(&build(1, 4, 288, u64::MAX, 100)).unwrap().energy,
            Energy::NotFilled
        );
        assert_eq!(
            parse(&build(1, 3, 120, 0xFFFF_FFFF, 100)).unwrap().energy,
            Energy::NotFilled
        );
        let apu = parse(&build(2, 1, 120, 0, 0)).unwrap();
        assert_eq!(apu.energy, Energy::Absent);
        // Power not filled either.
        let mut t = build(1, 4, 288, 5, 0);
        t[10..12].copy_from_slice(&[0xff, 0xff]);
        assert_eq!(parse(&t).unwrap().socket_power_w, None);
    }

    #[test]
    fn truncated_tables_are_errors() {
        assert!(parse(&[1, 2]).unwrap_err().contains("header"));
        let t = build(1, 5, 360, 1, 1);
        assert!(parse(&t[..100]).unwrap_err().contains("360"));
        // A header that claims a size too small for its revision's counter.
        let mut small = build(1, 5, 360, 1, 1);
        small[0..2].copy_from_slice(&64u16.to_le_bytes());
        assert!(parse(&small).unwrap_err().contains("no room"));
    }

    #[test]
    fn counts_convert_to_microjoules_exactly() {
        assert_eq!(counts_to_uj(65536), 1_000_000);
        assert_eq!(counts_to_uj(1), 15);
        assert_eq!(counts_to_uj(1024), 15625);
        // No overflow near the top of the range.
        assert_eq!(
            counts_to_uj(u64::MAX / 2),
            ((u64::MAX / 2) as u128 * 15625 / 1024) as u64
        );
    }
}
