//! The allocator of everything built from this crate (the program, its
//! tests and benches alike, so that what they measure is what ships).

/// Rust's allocations go to jemalloc: a cache per thread, so the workers
/// take no lock per malloc (with glibc's allocator sixteen workers shared
/// two arenas and waited on their locks), and the block freed last is the
/// next one given, still in the CPU's cache. mimalloc, used before, hands
/// out the blocks of a page in turn: with sixteen workers taking turns on
/// two cores, nearly every malloc missed the cache (its functions were 8 %
/// of the importer's samples at zero latency, most of it one load that
/// missed; jemalloc's are 2 %).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Freed memory goes back to the system at once, not after jemalloc's ten
/// seconds: flat memory over a long run is worth more than the little
/// speed keeping it buys (a 360,000-message run: 50-52 MB of anonymous
/// memory, against 61 MB after one second and 62-70 MB after ten).
/// jemalloc reads this as it starts, before `main`; this build of it
/// prefixes its names with `_rjem_`.
#[cfg(not(target_env = "msvc"))]
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: Option<&'static std::ffi::c_char> =
    // SAFETY: a pointer to the first byte of a static C string.
    Some(unsafe { &*c"dirty_decay_ms:0,muzzy_decay_ms:0".as_ptr() });

#[cfg(test)]
mod tests {
    /// jemalloc took its options from `MALLOC_CONF` as it started (the
    /// test harness is this program too).
    #[cfg(not(target_env = "msvc"))]
    #[test]
    fn jemalloc_gives_freed_memory_back_at_once() {
        if std::env::var_os("_RJEM_MALLOC_CONF").is_some() {
            return;
        }
        let get = |name: &std::ffi::CStr| {
            let mut value: isize = -1;
            let mut len = std::mem::size_of::<isize>();
            // SAFETY: `opt.*_decay_ms` are ssize_t; `value` and `len` are
            // that type and its size.
            let rc = unsafe {
                tikv_jemalloc_sys::mallctl(
                    name.as_ptr(),
                    (&mut value as *mut isize).cast(),
                    &mut len,
                    std::ptr::null_mut(),
                    0,
                )
            };
            assert_eq!(rc, 0, "{name:?}");
            value
        };
        assert_eq!(get(c"opt.dirty_decay_ms"), 0);
        assert_eq!(get(c"opt.muzzy_decay_ms"), 0);
    }
}
