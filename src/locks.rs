//! Per-key async locks: concurrent copies of one request (same Task id) are handled one after the
//! other in this process, so the second sees what the first wrote instead of racing it. Across
//! replicas the look-before-write and duplicate repair in [`crate::outbound`] take over.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// A set of named locks; entries disappear when nobody holds or waits for them.
#[derive(Default, Clone)]
pub struct KeyedLocks {
    locks: Arc<Mutex<HashMap<String, Weak<AsyncMutex<()>>>>>,
}

impl KeyedLocks {
    /// Waits for and takes the lock named `key`.
    pub async fn lock(&self, key: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, weak| weak.strong_count() > 0);
            match map.get(key).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(AsyncMutex::new(()));
                    map.insert(key.to_owned(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn same_key_is_exclusive_and_other_keys_are_not() {
        let locks = KeyedLocks::default();
        let inside = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (locks, inside, max) = (locks.clone(), inside.clone(), max.clone());
                tokio::spawn(async move {
                    let _g = locks.lock("task-1").await;
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(max.load(Ordering::SeqCst), 1);
        let _a = locks.lock("a").await;
        let _b = tokio::time::timeout(std::time::Duration::from_millis(100), locks.lock("b"))
            .await
            .expect("other key is free");
        assert_eq!(locks.locks.lock().unwrap().len(), 2, "released keys are forgotten on the next lock");
    }
}
