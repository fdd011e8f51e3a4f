//! A minimal rtnetlink (NETLINK_ROUTE) client: the few link and address requests that
//! `linux.netDevices` needs (part of the syscall wrappers: see `sys.rs`). Messages are built
//! and parsed as bytes, in native byte order as the kernel ABI defines them, so no `unsafe`
//! is needed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol};
use nix::sys::stat::Mode;

// <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_link.h>, <linux/if_addr.h>.
const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_MULTI: u16 = 0x2;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_CREATE: u16 = 0x400;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_FD: u16 = 28;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const IFA_FLAGS: u16 = 8;
const IFF_UP: u32 = 0x1;
const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;
pub const IFA_F_PERMANENT: u32 = 0x80;
pub const RT_SCOPE_UNIVERSE: u8 = 0;
pub const RT_SCOPE_LINK: u8 = 253;
/// The address flags a user sets (`ip addr add … nodad noprefixroute home mngtmpaddr`); the
/// others are state the kernel keeps.
const IFA_USER_FLAGS: u32 = 0x02 | 0x10 | 0x100 | 0x200;

/// A network interface of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: i32,
    /// IFF_* flags.
    pub flags: u32,
    pub name: String,
}

impl Link {
    pub fn is_up(&self) -> bool {
        self.flags & IFF_UP != 0
    }
}

/// An interface address as the kernel reported it, re-addable elsewhere as it was.
#[derive(Debug, Clone)]
pub struct Addr {
    pub family: u8,
    pub prefix_len: u8,
    /// IFA_F_* flags (the 32-bit IFA_FLAGS attribute when given).
    pub flags: u32,
    pub scope: u8,
    pub index: u32,
    /// IFA_ADDRESS, IFA_LOCAL and IFA_BROADCAST, as received.
    pub attrs: Vec<(u16, Vec<u8>)>,
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let attr = |kind| self.attrs.iter().find(|(k, _)| *k == kind).map(|(_, v)| v);
        // For IPv4 IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer's).
        let bytes = attr(IFA_LOCAL).or(attr(IFA_ADDRESS));
        let ip: Option<IpAddr> = match bytes.map(|b| b.as_slice()) {
            Some(&[a, b, c, d]) => Some(Ipv4Addr::new(a, b, c, d).into()),
            Some(b) => <[u8; 16]>::try_from(b)
                .ok()
                .map(|o| Ipv6Addr::from(o).into()),
            None => None,
        };
        match ip {
            Some(ip) => write!(f, "{ip}/{}", self.prefix_len),
            None => write!(f, "?/{}", self.prefix_len),
        }
    }
}

/// A NETLINK_ROUTE socket, bound to the network namespace it was opened in.
pub struct Socket {
    fd: OwnedFd,
    seq: u32,
}

impl Socket {
    /// A socket in the current network namespace.
    pub fn open() -> Result<Socket, Errno> {
        let fd = socket::socket(
            AddressFamily::Netlink,
            socket::SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )?;
        socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
        Ok(Socket { fd, seq: 0 })
    }

    /// A socket in the network namespace `netns`: a netlink socket keeps the namespace it was
    /// made in, so enter it, open the socket, and come back. setns moves only the calling
    /// thread: the caller must be single-threaded (gpurun is). Not coming back is fatal: the
    /// hooks and the rest of `create` must not run in the container's namespace (exiting is
    /// simpler than a forked child passing the socket back; the init dies with us).
    pub fn open_in(netns: BorrowedFd) -> Result<Socket, Errno> {
        let own = open(
            "/proc/thread-self/ns/net",
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        setns(netns, CloneFlags::CLONE_NEWNET)?;
        let sock = Socket::open();
        if let Err(errno) = setns(own.as_fd(), CloneFlags::CLONE_NEWNET) {
            let msg = format!("setns back to the runtime's network namespace: {errno}");
            crate::logging::install(Default::default()).error(&msg); // main's logger, once set
            std::process::exit(1);
        }
        sock
    }

    /// Every interface of the namespace.
    pub fn links(&mut self) -> Result<Vec<Link>, Errno> {
        let replies = self.dump(RTM_GETLINK, &ifinfo(0, 0, 0))?;
        Ok(replies
            .iter()
            .filter(|(kind, _)| *kind == RTM_NEWLINK)
            .filter_map(|(_, p)| parse_link(p))
            .collect())
    }

    /// Set the interface up or down (IFF_UP).
    pub fn set_up(&mut self, index: i32, up: bool) -> Result<(), Errno> {
        let flags = if up { IFF_UP } else { 0 };
        self.request(RTM_NEWLINK, NLM_F_ACK, &ifinfo(index, flags, IFF_UP))
            .map(drop)
    }

    /// Move the interface into the network namespace `netns`, renamed to `name` there (a
    /// `%d` template lets the kernel pick a free name). An error may come after the move:
    /// the kernel keeps the old name there if free, then renames.
    pub fn move_to(&mut self, index: i32, netns: BorrowedFd, name: &str) -> Result<(), Errno> {
        let mut body = ifinfo(index, 0, 0);
        push_attr(
            &mut body,
            IFLA_NET_NS_FD,
            &(netns.as_raw_fd() as u32).to_ne_bytes(),
        );
        push_attr(&mut body, IFLA_IFNAME, &c_string(name));
        self.request(RTM_NEWLINK, NLM_F_ACK, &body).map(drop)
    }

    /// The addresses of the interface `index`, of every family.
    pub fn addresses(&mut self, index: i32) -> Result<Vec<Addr>, Errno> {
        let replies = self.dump(RTM_GETADDR, &ifaddr(0, 0, 0, 0, 0))?;
        Ok(replies
            .iter()
            .filter(|(kind, _)| *kind == RTM_NEWADDR)
            .filter_map(|(_, p)| parse_addr(p))
            .filter(|a| a.index == index as u32)
            .collect())
    }

    /// Add `addr` (read from another interface) to the interface `index`.
    pub fn add_address(&mut self, index: i32, addr: &Addr) -> Result<(), Errno> {
        let flags = addr.flags & IFA_USER_FLAGS;
        let mut body = ifaddr(
            addr.family,
            addr.prefix_len,
            flags as u8,
            addr.scope,
            index as u32,
        );
        for (kind, value) in &addr.attrs {
            push_attr(&mut body, *kind, value);
        }
        push_attr(&mut body, IFA_FLAGS, &flags.to_ne_bytes());
        let how = NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
        self.request(RTM_NEWADDR, how, &body).map(drop)
    }

    /// A dump request, retried when the kernel says the list changed while it was being
    /// read (NLM_F_DUMP_INTR).
    fn dump(&mut self, kind: u16, body: &[u8]) -> Result<Vec<(u16, Vec<u8>)>, Errno> {
        let mut tries = 0;
        loop {
            match self.request(kind, NLM_F_DUMP, body) {
                Err(Errno::EINTR) if tries < 5 => tries += 1,
                other => return other,
            }
        }
    }

    /// Send one request and collect the payloads of its replies (type, bytes), up to the
    /// ack, the end of a dump, or the single answer of a plain get. A kernel error comes
    /// back as its errno; an interrupted dump as EINTR.
    fn request(
        &mut self,
        kind: u16,
        flags: u16,
        body: &[u8],
    ) -> Result<Vec<(u16, Vec<u8>)>, Errno> {
        self.seq = self.seq.wrapping_add(1);
        let mut msg = Vec::with_capacity(NLMSG_HDRLEN + body.len());
        msg.extend(((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        msg.extend(kind.to_ne_bytes());
        msg.extend((flags | NLM_F_REQUEST).to_ne_bytes());
        msg.extend(self.seq.to_ne_bytes());
        msg.extend(0u32.to_ne_bytes());
        msg.extend(body);
        socket::send(self.fd.as_raw_fd(), &msg, MsgFlags::empty())?;
        let mut replies = Vec::new();
        let mut interrupted = false;
        // Large enough for any one datagram of a dump (the kernel fills at most 32 KiB).
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = socket::recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
            let mut data = &buf[..n];
            while data.len() >= NLMSG_HDRLEN {
                let len = u32_at(data, 0) as usize;
                if len < NLMSG_HDRLEN || len > data.len() {
                    return Err(Errno::EBADMSG);
                }
                let (typ, mflags, seq) = (u16_at(data, 4), u16_at(data, 6), u32_at(data, 8));
                let payload = &data[NLMSG_HDRLEN..len];
                data = &data[align4(len).min(data.len())..];
                if seq != self.seq {
                    continue;
                }
                interrupted |= mflags & NLM_F_DUMP_INTR != 0;
                match typ {
                    NLMSG_ERROR | NLMSG_DONE => {
                        let code = if payload.len() >= 4 {
                            i32::from_ne_bytes(payload[..4].try_into().expect("4 bytes"))
                        } else {
                            0
                        };
                        return match (code, interrupted) {
                            (0, true) => Err(Errno::EINTR),
                            (0, false) => Ok(replies),
                            (c, _) => Err(Errno::from_raw(-c)),
                        };
                    }
                    _ => {
                        replies.push((typ, payload.to_vec()));
                        if mflags & NLM_F_MULTI == 0 && flags & NLM_F_ACK == 0 {
                            return Ok(replies);
                        }
                    }
                }
            }
        }
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn c_string(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// `struct ifinfomsg`: family, pad, type, index, flags, change.
fn ifinfo(index: i32, flags: u32, change: u32) -> Vec<u8> {
    let mut v = vec![0u8; 4];
    v.extend(index.to_ne_bytes());
    v.extend(flags.to_ne_bytes());
    v.extend(change.to_ne_bytes());
    v
}

/// `struct ifaddrmsg`: family, prefix length, flags, scope, index.
fn ifaddr(family: u8, prefix_len: u8, flags: u8, scope: u8, index: u32) -> Vec<u8> {
    let mut v = vec![family, prefix_len, flags, scope];
    v.extend(index.to_ne_bytes());
    v
}

/// Append one `struct rtattr` (length, type, value, padding to 4 bytes).
fn push_attr(msg: &mut Vec<u8>, kind: u16, value: &[u8]) {
    msg.extend(((4 + value.len()) as u16).to_ne_bytes());
    msg.extend(kind.to_ne_bytes());
    msg.extend(value);
    msg.resize(align4(msg.len()), 0);
}

/// The attributes that follow a fixed header: (type, value); a malformed one ends the list.
fn attrs(mut data: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 4 {
        let len = u16_at(data, 0) as usize;
        if len < 4 || len > data.len() {
            break;
        }
        // The top bits are NLA_F_NESTED / NLA_F_NET_BYTEORDER.
        out.push((u16_at(data, 2) & 0x3fff, &data[4..len]));
        data = &data[align4(len).min(data.len())..];
    }
    out
}

fn parse_link(p: &[u8]) -> Option<Link> {
    if p.len() < 16 {
        return None;
    }
    let name = attrs(&p[16..])
        .into_iter()
        .find(|(k, _)| *k == IFLA_IFNAME)
        .map(|(_, v)| String::from_utf8_lossy(v.split(|b| *b == 0).next().unwrap_or(v)).into())?;
    Some(Link {
        index: u32_at(p, 4) as i32,
        flags: u32_at(p, 8),
        name,
    })
}

fn parse_addr(p: &[u8]) -> Option<Addr> {
    if p.len() < 8 || (p[0] != AF_INET && p[0] != AF_INET6) {
        return None;
    }
    let mut addr = Addr {
        family: p[0],
        prefix_len: p[1],
        flags: p[2] as u32,
        scope: p[3],
        index: u32_at(p, 4),
        attrs: Vec::new(),
    };
    for (kind, value) in attrs(&p[8..]) {
        match kind {
            IFA_FLAGS if value.len() == 4 => addr.flags = u32_at(value, 0),
            IFA_ADDRESS | IFA_LOCAL | IFA_BROADCAST => addr.attrs.push((kind, value.to_vec())),
            _ => {}
        }
    }
    Some(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_with_padding() {
        let mut msg = Vec::new();
        push_attr(&mut msg, IFLA_IFNAME, &c_string("eth0"));
        push_attr(&mut msg, IFLA_NET_NS_FD, &7u32.to_ne_bytes());
        assert_eq!(msg.len(), 12 + 8);
        let parsed = attrs(&msg);
        assert_eq!(parsed[0], (IFLA_IFNAME, &b"eth0\0"[..]));
        assert_eq!(parsed[1], (IFLA_NET_NS_FD, &7u32.to_ne_bytes()[..]));
    }

    #[test]
    fn addresses_parse_and_print() {
        let mut p = ifaddr(AF_INET, 24, 0x80, RT_SCOPE_UNIVERSE, 3);
        push_attr(&mut p, IFA_ADDRESS, &[10, 99, 0, 1]);
        push_attr(&mut p, IFA_LOCAL, &[10, 99, 0, 1]);
        push_attr(&mut p, IFA_FLAGS, &(IFA_F_PERMANENT | 0x200).to_ne_bytes());
        let a = parse_addr(&p).unwrap();
        assert_eq!((a.index, a.flags, a.attrs.len()), (3, 0x280, 2));
        assert_eq!(a.to_string(), "10.99.0.1/24");
        let mut p = ifaddr(AF_INET6, 64, 0, 0, 3);
        let v6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        push_attr(&mut p, IFA_ADDRESS, &v6.octets());
        assert_eq!(parse_addr(&p).unwrap().to_string(), "2001:db8::1/64");
    }

    #[test]
    fn links_parse() {
        let mut p = ifinfo(5, IFF_UP, 0);
        push_attr(&mut p, IFLA_IFNAME, &c_string("veth1"));
        let l = parse_link(&p).unwrap();
        assert_eq!((l.index, l.is_up(), l.name.as_str()), (5, true, "veth1"));
        assert!(parse_link(&p[..10]).is_none());
    }
}
