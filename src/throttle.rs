//! The request rate limit and the cap on requests in flight.
//!
//! It only waits; it never decides what to send.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::job::Limits;

/// Admits requests at most `requests_per_second`, with at most
/// `max_in_flight` unanswered at once.
#[derive(Debug, Clone)]
pub struct Throttle {
    rate: Arc<DefaultDirectRateLimiter>,
    in_flight: Arc<Semaphore>,
}

/// A place among the requests in flight; dropping it frees the place.
#[derive(Debug)]
pub struct InFlight(#[allow(dead_code)] OwnedSemaphorePermit);

impl Throttle {
    pub fn new(limits: &Limits) -> Throttle {
        let period = Duration::from_secs_f64(1.0 / limits.requests_per_second);
        // `with_period` refuses only a zero period; a rate so high it rounds
        // to zero means "no limit worth keeping", so take the smallest one.
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(NonZeroU32::MIN);
        Throttle {
            rate: Arc::new(RateLimiter::direct(quota)),
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight.get() as usize)),
        }
    }

    /// Waits for a place in flight, then for the rate limit.
    pub async fn admit(&self) -> InFlight {
        let permit = Arc::clone(&self.in_flight)
            .acquire_owned()
            .await
            .expect("the in-flight semaphore is never closed");
        self.rate.until_ready().await;
        InFlight(permit)
    }
}
