//! Making a container's cgroup (cgroupfs): named first ([`Cgroup::plan`], recorded by the
//! caller), then made ([`Cgroup::make`]), so a crash in between leaves nothing unrecorded.

use std::path::Path;

use oci_spec::runtime::{LinuxDevice, LinuxResources};

use super::{devices, fs, hierarchies, path, v1, v2, Cgroup, Manager, Result};

impl Cgroup {
    /// Name the container's cgroup in every hierarchy, and the directories that making it will
    /// create, without making anything: the caller records this value (state.json) first, so
    /// that whatever [`Cgroup::make`] gets to before a crash can be removed again.
    /// With systemd only the unit and its directories are named: [`Cgroup::start_unit`]
    /// makes them once the init exists.
    pub fn plan(
        cgroups_path: Option<&Path>,
        id: &str,
        resources: Option<&LinuxResources>,
        manager: Manager,
    ) -> Result<Cgroup> {
        let spec_rules = resources.and_then(|r| r.devices().as_deref());
        let device_rules = devices::from_spec(spec_rules.unwrap_or_default());
        if let Manager::Systemd { rootless } = manager {
            let cg = Cgroup::for_unit(cgroups_path, id, rootless)?;
            return Ok(Cgroup { device_rules, ..cg });
        }
        let hierarchies = hierarchies();
        let mut cg = Cgroup {
            device_rules,
            unified_host: hierarchies.iter().any(|h| h.v2 && h.name.is_empty()),
            ..Cgroup::default()
        };
        for h in hierarchies {
            let dir = path::container_dir(h, cgroups_path, id)?;
            cg.created.extend(fs::missing_dirs(&dir));
            match h.v2 {
                true => cg.v2 = Some(dir),
                false => drop(cg.v1.insert(h.name.clone(), dir)),
            }
        }
        Ok(cg)
    }

    /// Make the planned cgroup (cgroupfs) and apply `resources` (and the device rules, with
    /// `devices` from linux.devices allowed). On error, nothing is left behind. Directories
    /// made that the plan did not foresee (another process removed a parent meanwhile) are
    /// added to `created`: the caller records the value again when it changed.
    pub fn make(
        &mut self,
        resources: Option<&LinuxResources>,
        devices: &[LinuxDevice],
    ) -> Result<()> {
        if self.systemd.is_some() {
            return Ok(());
        }
        let result = self.make_dirs(resources, devices);
        if result.is_err() {
            self.remove();
        }
        result
    }

    fn make_dirs(
        &mut self,
        resources: Option<&LinuxResources>,
        devices: &[LinuxDevice],
    ) -> Result<()> {
        let hierarchies = hierarchies();
        for h in hierarchies {
            let dir = match h.v2 {
                true => self.v2.clone(),
                false => self.v1.get(&h.name).cloned(),
            };
            let Some(dir) = dir else { continue };
            let mut made = Vec::new();
            fs::mkdir_all(&dir, &mut made)?;
            for d in made {
                if !self.created.contains(&d) {
                    self.created.push(d);
                }
            }
            if !h.v2 && h.controllers.iter().any(|c| c == "cpuset") {
                v1::init_cpuset(&h.mountpoint(), &dir)?;
            }
        }
        if let Some(dir) = &self.v2 {
            let mountpoint = hierarchies
                .iter()
                .find(|h| h.v2)
                .map(|h| h.mountpoint())
                .unwrap_or_default();
            v2::enable_controllers(&mountpoint, dir)?;
        }
        let empty = LinuxResources::default();
        self.apply(resources.unwrap_or(&empty), false)?;
        devices::apply(
            self,
            resources
                .and_then(|r| r.devices().as_deref())
                .unwrap_or_default(),
            devices,
        )
    }
}
