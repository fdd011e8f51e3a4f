//! Applying `process.capabilities` (all five sets) with the `caps` crate.

use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::LinuxCapabilities;

use crate::error::{Error, Result};

fn to_set(
    names: Option<&std::collections::HashSet<oci_spec::runtime::Capability>>,
) -> Result<CapsHashSet> {
    names
        .into_iter()
        .flatten()
        .map(|c| {
            let name = c.to_string();
            let name = if name.starts_with("CAP_") {
                name
            } else {
                format!("CAP_{name}")
            };
            Capability::from_str(&name)
                .map_err(|_| Error::Unsupported(format!("unknown capability {name}")))
        })
        .collect()
}

fn caps_err(what: &'static str) -> impl FnOnce(caps::errors::CapsError) -> Error {
    move |e| Error::Unsupported(format!("{what}: {e}"))
}

/// The empty capability sets (what a spec without `process.capabilities` means).
pub fn none() -> LinuxCapabilities {
    let empty = serde_json::json!([]);
    serde_json::from_value(serde_json::json!({
        "bounding": empty, "effective": empty, "inheritable": empty, "permitted": empty, "ambient": empty
    }))
    .expect("empty capability sets deserialise")
}

/// Drop everything outside the bounding set. Must run while we still hold CAP_SETPCAP, i.e.
/// before switching to the container's user.
pub fn drop_bounding(c: &LinuxCapabilities) -> Result<()> {
    let keep = to_set(c.bounding().as_ref())?;
    // Dropping a capability that is already gone (or that this kernel does not know) is
    // harmless: skip the per-capability read and just drop.
    for cap in caps::all().into_iter().filter(|cap| !keep.contains(cap)) {
        if let Err(e) = caps::drop(None, CapSet::Bounding, cap) {
            if caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
                return Err(caps_err("drop bounding capability")(e));
            }
        }
    }
    Ok(())
}

/// Set permitted, inheritable, effective and ambient to exactly what the spec lists. Runs after
/// the uid switch (with PR_SET_KEEPCAPS, so permitted survived it). `keep_admin` also keeps
/// CAP_SYS_ADMIN in permitted and effective, to install a seccomp filter without
/// no_new_privs; execve drops it again (see `process::setup::needs_admin_for_seccomp`).
pub fn apply_sets(c: &LinuxCapabilities, keep_admin: bool) -> Result<()> {
    let spec_permitted = to_set(c.permitted().as_ref())?;
    let mut permitted = spec_permitted.clone();
    let mut effective = to_set(c.effective().as_ref())?;
    if keep_admin {
        permitted.insert(Capability::CAP_SYS_ADMIN);
        effective.insert(Capability::CAP_SYS_ADMIN);
    }
    let inheritable = to_set(c.inheritable().as_ref())?;
    let ambient = to_set(c.ambient().as_ref())?;
    // Each capset must keep effective ⊆ permitted, and raising inheritable needs CAP_SETPCAP
    // in effective: so inheritable first, then shrink effective, then permitted.
    caps::set(None, CapSet::Inheritable, &inheritable)
        .map_err(caps_err("set inheritable capabilities"))?;
    caps::set(None, CapSet::Effective, &effective)
        .map_err(caps_err("set effective capabilities"))?;
    caps::set(None, CapSet::Permitted, &permitted)
        .map_err(caps_err("set permitted capabilities"))?;
    // An ambient capability must also be permitted and inheritable; the kernel refuses others,
    // and runc ignores those silently as well.
    caps::clear(None, CapSet::Ambient).map_err(caps_err("clear ambient capabilities"))?;
    for cap in ambient
        .iter()
        .filter(|c| spec_permitted.contains(c) && inheritable.contains(c))
    {
        caps::raise(None, CapSet::Ambient, *cap).map_err(caps_err("raise ambient capability"))?;
    }
    Ok(())
}
