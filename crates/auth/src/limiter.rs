//! Limits on authentication attempts, per account and per client address.
//! Token buckets from `governor`; state is per node (a cluster behind a
//! load balancer multiplies the limits by its node count).

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::AuthError;
use crate::settings::RateLimitSettings;

pub struct LoginLimiter {
    per_account: DefaultKeyedRateLimiter<String>,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    register_per_address: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN))
}

impl LoginLimiter {
    pub fn new(settings: &RateLimitSettings) -> LoginLimiter {
        LoginLimiter {
            per_account: RateLimiter::keyed(per_minute(settings.login_per_account_per_minute)),
            per_address: RateLimiter::keyed(per_minute(settings.login_per_address_per_minute)),
            register_per_address: RateLimiter::keyed(per_minute(
                settings.register_per_address_per_minute,
            )),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one login attempt against the address and, for a well-formed
    /// username, the account. (A malformed username can never log in, so it
    /// only costs its address.)
    pub fn check_login(&self, address: IpAddr, account: Option<&str>) -> Result<(), AuthError> {
        self.check(self.per_address.check_key(&address))?;
        match account {
            Some(account) => self.check(self.per_account.check_key(&account.to_owned())),
            None => Ok(()),
        }
    }

    pub fn check_register(&self, address: IpAddr) -> Result<(), AuthError> {
        self.check(self.register_per_address.check_key(&address))
    }

    fn check(
        &self,
        outcome: Result<(), governor::NotUntil<governor::clock::QuantaInstant>>,
    ) -> Result<(), AuthError> {
        outcome.map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            AuthError::RateLimited {
                retry_after_secs: wait.as_secs().max(1),
            }
        })
    }

    /// Forgets buckets that are full again; call periodically so memory does
    /// not grow with every address ever seen.
    pub fn prune(&self) {
        self.per_account.retain_recent();
        self.per_address.retain_recent();
        self.register_per_address.retain_recent();
    }
}
