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
            .allow_burst(burst(limits.requests_per_second));
        Throttle {
            rate: Arc::new(RateLimiter::direct(quota)),
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight.get() as usize)),
        }
    }

    /// Waits for a place in flight and the rate limit, then takes as many
    /// more as are free right now, up to `most` in all.
    pub async fn admit(&self, most: usize) -> Vec<InFlight> {
        let permit = Arc::clone(&self.in_flight)
            .acquire_owned()
            .await
            .expect("the in-flight semaphore is never closed");
        self.rate.until_ready().await;
        let mut admitted = vec![InFlight(permit)];
        while admitted.len() < most {
            let Ok(permit) = Arc::clone(&self.in_flight).try_acquire_owned() else {
                break;
            };
            if self.rate.check().is_err() {
                break;
            }
            admitted.push(InFlight(permit));
        }
        admitted
    }
}

/// The burst a limiter at `requests_per_second` allows, as a tolerance of
/// time (GCRA's τ): the room for `burst - 1` requests ahead of schedule.
pub fn burst_tolerance(requests_per_second: f64) -> Duration {
    Duration::from_secs_f64(f64::from(burst(requests_per_second).get() - 1) / requests_per_second)
}

/// The burst the limiter allows: a twentieth of a second's quota (at least
/// one request). Without one, each request waits for its exact slot and
/// scheduling delays add up: governor then runs some 5–10% under quota at
/// hundreds of requests per second. No one-second window exceeds the quota
/// by more than the burst.
fn burst(requests_per_second: f64) -> NonZeroU32 {
    let burst = (requests_per_second / 20.0).ceil().clamp(1.0, 1000.0) as u32;
    NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_is_a_twentieth_of_a_second_of_quota() {
        for (rate, expected) in [(0.5, 1), (5.0, 1), (50.0, 3), (500.0, 25), (1e9, 1000)] {
            assert_eq!(burst(rate).get(), expected, "{rate}");
        }
    }
}
