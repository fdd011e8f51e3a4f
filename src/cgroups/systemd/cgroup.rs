//! The [`Cgroup`] of a container whose cgroup systemd makes: named before the clone, made by
//! systemd once the init exists ([`Cgroup::start_unit`]), updated as unit properties too.

use std::path::Path;

use oci_spec::runtime::{LinuxDevice, LinuxResources};

use super::super::{devices, fs, hierarchies, resources, v1, v2, Cgroup, Result, ROOT};

impl Cgroup {
    /// The directories the unit's cgroup will have in every hierarchy; nothing is made yet.
    pub(in crate::cgroups) fn for_unit(
        cgroups_path: Option<&Path>,
        id: &str,
        rootless: bool,
    ) -> Result<Cgroup> {
        let path = cgroups_path.map(|p| p.to_string_lossy());
        let (unit, rel) = super::plan(path.as_deref(), id, rootless)?;
        let rel = rel.strip_prefix("/").expect("absolute").to_path_buf();
        let mut cg = Cgroup {
            unified_host: hierarchies().iter().any(|h| h.v2 && h.name.is_empty()),
            systemd: Some(unit),
            ..Cgroup::default()
        };
        for h in hierarchies() {
            let dir = h.mountpoint().join(&rel);
            match h.v2 {
                true => cg.v2 = Some(dir),
                false => drop(cg.v1.insert(h.name.clone(), dir)),
            }
        }
        Ok(cg)
    }

    /// The parent, not the init itself, puts the init in this cgroup (systemd moves it).
    pub fn placed_by_parent(&self) -> bool {
        self.systemd.is_some()
    }

    /// systemd driver, after the clone: have systemd make the unit with `pid` in it, then
    /// make what systemd does not (v1 hierarchies it does not manage), write the limits it has
    /// no property for and load the device filter, and move `pid` into every hierarchy.
    pub fn start_unit(
        &self,
        pid: i32,
        id: &str,
        resources: Option<&LinuxResources>,
        devices: &[LinuxDevice],
    ) -> Result<()> {
        let unit = self.systemd.as_ref().expect("systemd cgroup");
        let empty = LinuxResources::default();
        let r = resources::effective(resources.unwrap_or(&empty));
        resources::validate(&r)?;
        let spec_rules = resources
            .and_then(|r| r.devices().as_deref())
            .unwrap_or_default();
        let rules = devices::rules(spec_rules, devices);
        let v2 = self.unified_host;
        super::start(unit, pid, id, &r, &rules, devices, v2)?;
        let mut made = Vec::new();
        for (name, dir) in &self.v1 {
            fs::mkdir_all(dir, &mut made)?;
            if made.last() == Some(dir) && name.split(',').any(|c| c == "cpuset") {
                let root = Path::new(ROOT).join(name);
                v1::init_cpuset(&root, dir)?;
            }
        }
        if let Some(dir) = &self.v2 {
            fs::mkdir_all(dir, &mut made)?;
            let mountpoint = hierarchies()
                .iter()
                .find(|h| h.v2)
                .map(|h| h.mountpoint())
                .unwrap_or_default();
            if !unit.name.ends_with(".slice") {
                v2::enable_controllers(&mountpoint, dir)?;
            }
        }
        self.apply(&r, false)?;
        // Device rules need privilege an unprivileged user lacks (runc skips them too).
        if !unit.user {
            devices::apply(self, spec_rules, devices)?;
        }
        self.add(pid)
    }

    /// systemd driver, `update`: the new limits (only those given) as unit properties too, so
    /// that systemd keeps them. Called before [`Cgroup::apply`]: a value systemd refuses then
    /// changes nothing.
    pub fn update_unit(&self, r: &LinuxResources) -> Result<()> {
        let Some(unit) = &self.systemd else {
            return Ok(());
        };
        let r = resources::effective(r);
        resources::validate(&r)?;
        let current_limit = || {
            let text = std::fs::read_to_string(self.v2.as_ref()?.join("memory.max")).ok()?;
            Some(text.trim().parse().unwrap_or(-1))
        };
        super::set_properties(unit, &r, self.unified_host, current_limit)
    }
}
