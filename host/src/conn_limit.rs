//! A cap on concurrent connections per client address, so that one client cannot take
//! every file descriptor (and with them the accept loop) from the others.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Open connections by client address, shared by the accept loop and its connections.
#[derive(Debug)]
pub struct ConnectionLimit {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Admitted {
    limit: Arc<ConnectionLimit>,
    client: IpAddr,
}

impl ConnectionLimit {
    /// At most `max` (at least 1) open connections per address.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(ConnectionLimit {
            max: max.max(1),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// A place for one more connection from `client`, or `None` if it has `max` open.
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> Option<Admitted> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(client).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Admitted {
            limit: self.clone(),
            client,
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.limit.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.client) {
            *count -= 1;
            // Addresses come and go: keep the map to the ones with connections open.
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_is_freed_when_its_connection_ends() {
        let limit = ConnectionLimit::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = limit.admit(a).unwrap();
        let _second = limit.admit(a).unwrap();
        assert!(limit.admit(a).is_none());
        // Another address is not affected.
        let _other = limit.admit(b).unwrap();
        drop(first);
        assert!(limit.admit(a).is_some());
    }
}
