//! The NXLink request signature (ARCHITECTURE.md, "Signature"), as a pure
//! function.
//!
//! It reads no clock and no environment: the caller passes the timestamp and
//! the credentials, and sends exactly the body bytes that were signed.

use std::fmt;

use md5::{Digest, Md5};

/// The access key and secret of an NXLink account.
///
/// `Debug` never shows the secret, so a credential can sit in a struct that
/// gets logged without leaking it.
#[derive(Clone)]
pub struct Credentials {
    access_key: String,
    access_secret: String,
}

impl Credentials {
    pub fn new(access_key: impl Into<String>, access_secret: impl Into<String>) -> Credentials {
        Credentials {
            access_key: access_key.into(),
            access_secret: access_secret.into(),
        }
    }

    pub fn access_key(&self) -> &str {
        &self.access_key
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("access_secret", &"<redacted>")
            .finish()
    }
}

/// The header values of one request, apart from the signature itself.
#[derive(Debug, Clone, Copy)]
pub struct SignedParts<'a> {
    pub biz_type: &'a str,
    pub action: &'a str,
    /// Unix time in milliseconds, as sent in the `ts` header.
    pub ts: i64,
    /// The exact bytes of the HTTP body; empty for no body.
    pub body: &'a [u8],
}

/// Returns the lowercase hex MD5 signature of a request.
///
/// 1. Lay out the four header pairs in ASCII order of their names:
///    `accessKey`, `action`, `bizType`, `ts`.
/// 2. Append `&body=<body>` unless the body is empty.
/// 3. Append `&accessSecret=<secret>`.
/// 4. MD5 over those bytes, as lowercase hex.
pub fn sign(credentials: &Credentials, parts: &SignedParts<'_>) -> String {
    let mut hasher = Md5::new();
    // Step 1.
    hasher.update(b"accessKey=");
    hasher.update(credentials.access_key.as_bytes());
    hasher.update(b"&action=");
    hasher.update(parts.action.as_bytes());
    hasher.update(b"&bizType=");
    hasher.update(parts.biz_type.as_bytes());
    hasher.update(b"&ts=");
    hasher.update(parts.ts.to_string().as_bytes());
    // Step 2.
    if !parts.body.is_empty() {
        hasher.update(b"&body=");
        hasher.update(parts.body);
    }
    // Step 3.
    hasher.update(b"&accessSecret=");
    hasher.update(credentials.access_secret.as_bytes());
    // Step 4.
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vendor's published vectors.
    fn check(biz_type: &str, action: &str, body: &str, expected: &str) {
        let credentials = Credentials::new("fme2na3kdi3ki", "abciiiko2k3");
        let parts = SignedParts {
            biz_type,
            action,
            ts: 1655710885431,
            body: body.as_bytes(),
        };
        assert_eq!(sign(&credentials, &parts), expected, "body {body:?}");
    }

    #[test]
    fn vector_v1_key_order_name_then_id() {
        check(
            "1",
            "send",
            r#"{"name":"牛小信","id":10001}"#,
            "87c3560d3331ae23f1021e2025722354",
        );
    }

    #[test]
    fn vector_v2_key_order_id_then_name() {
        check(
            "1",
            "send",
            r#"{"id":10001,"name":"牛小信"}"#,
            "7750759da06333f20d0640be09355e34",
        );
    }

    #[test]
    fn vector_v3_spaces_change_the_sign() {
        check(
            "1",
            "send",
            r#"{"id": 10001, "name": "牛小信"}"#,
            "d0c24a9886c629330d7f3f2056c65bc2",
        );
    }

    #[test]
    fn vector_e_empty_body_leaves_out_the_body_part() {
        check("1", "send", "", "884afe159e39b6c88a0d6102ca97d704");
    }

    #[test]
    fn vector_createandcall() {
        let body = r#"{"taskDesc":"Description","callList":[{"userPhone":"85235757581","other":"OTHER","orderID":"ORDER_ID"}],"country":"HK","dispatchType":0,"predictCallRate":1.0,"agentGroupNo":"NX09445G000025","taskName":"Task Name","strategyName":"Default Strategy","startCount":1,"ratioCallRate":1.0,"startupType":3}"#;
        check("8", "cc", body, "ca0a5e966edd3f7a8284d370dd075221");
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let shown = format!("{:?}", Credentials::new("key", "very-secret"));
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("key"));
    }
}
