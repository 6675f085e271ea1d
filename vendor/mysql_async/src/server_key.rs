//! floodgate patch: encrypting the password with the server's RSA public key for
//! `caching_sha2_password`'s full authentication, without panicking.
//!
//! `mysql_common::crypto::encrypt` panics on a malformed key and on a password too long for
//! the key, and a key requested from the server is the server's (or a man in the middle's)
//! to malform. Here the PEM and DER are read with every length checked, and a key or
//! password that does not fit is an error.

use mysql_common::crypto::rsa::{GetRandom, Pkcs1OaepPadding, PublicKey};
use mysql_common::num_bigint::BigUint;

use crate::error::DriverError;

/// rsaEncryption, 1.2.840.113549.1.1.1.
const RSA_ENCRYPTION_OID: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OBJECT_IDENTIFIER: u8 = 0x06;
/// OAEP with SHA-1 takes 2 * 20 + 2 bytes of the modulus.
const OAEP_OVERHEAD: usize = 42;

/// `password` (already NUL-terminated and XORed with the scramble) encrypted with the RSA
/// public key `pem` (`PUBLIC KEY` or `RSA PUBLIC KEY`), with OAEP padding as the server
/// expects.
pub(crate) fn encrypt_password(password: &[u8], pem: &[u8]) -> Result<Vec<u8>, DriverError> {
    let key = public_key(pem).map_err(|reason| DriverError::BadServerPublicKey { reason })?;
    if password.len() + OAEP_OVERHEAD > key.num_octets() {
        return Err(DriverError::BadServerPublicKey {
            reason: format!("a {}-bit key cannot carry a password of {} bytes", key.modulus().bits(), password.len()),
        });
    }
    Ok(key.encrypt_block(password, Pkcs1OaepPadding::new(GetRandom)))
}

fn public_key(pem: &[u8]) -> Result<PublicKey, String> {
    let text = pem.strip_suffix(&[0]).unwrap_or(pem);
    let block = pem::parse(text).map_err(|e| format!("not a PEM key: {e}"))?;
    let (modulus, exponent) = match block.tag() {
        "PUBLIC KEY" => subject_public_key_info(block.contents())?,
        "RSA PUBLIC KEY" => rsa_public_key(block.contents())?,
        other => return Err(format!("a PEM block of {other:?}, not a public key")),
    };
    let bits = modulus.bits();
    if !(1024..=16384).contains(&bits) {
        return Err(format!("a modulus of {bits} bits"));
    }
    if exponent < BigUint::from(3u8) {
        return Err("an exponent below 3".into());
    }
    Ok(PublicKey::new(modulus, exponent))
}

/// SEQUENCE { SEQUENCE { OID rsaEncryption, ... }, BIT STRING { RSAPublicKey } }.
fn subject_public_key_info(der: &[u8]) -> Result<(BigUint, BigUint), String> {
    let (spki, _) = tlv(der, SEQUENCE)?;
    let (algorithm, rest) = tlv(spki, SEQUENCE)?;
    let (oid, _) = tlv(algorithm, OBJECT_IDENTIFIER)?;
    if oid != RSA_ENCRYPTION_OID {
        return Err("not an RSA key".into());
    }
    let (bits, _) = tlv(rest, BIT_STRING)?;
    match bits.split_first() {
        Some((0, key)) => rsa_public_key(key),
        _ => Err("a BIT STRING with unused bits".into()),
    }
}

/// SEQUENCE { INTEGER modulus, INTEGER exponent }.
fn rsa_public_key(der: &[u8]) -> Result<(BigUint, BigUint), String> {
    let (fields, _) = tlv(der, SEQUENCE)?;
    let (modulus, rest) = tlv(fields, INTEGER)?;
    let (exponent, _) = tlv(rest, INTEGER)?;
    Ok((BigUint::from_bytes_be(modulus), BigUint::from_bytes_be(exponent)))
}

/// One DER element of type `tag`: its contents and what follows it.
fn tlv(der: &[u8], tag: u8) -> Result<(&[u8], &[u8]), String> {
    let (&found, rest) = der.split_first().ok_or("the key ends early")?;
    if found != tag {
        return Err(format!("DER type {found:#04x} where {tag:#04x} belongs"));
    }
    let (&first, rest) = rest.split_first().ok_or("the key ends early")?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 || rest.len() < n {
            return Err("a malformed DER length".into());
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| acc << 8 | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err("the key ends early".into());
    }
    Ok(rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2048-bit public key (from mysql_common's tests).
    const KEY: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAxSKOcxiet8lLMn8ImyUE
bGGKob5EdRz/4wdiw12ED0GfKKTKhVnodFCfm1mdy7bKOX5QxL9skrvYodpW43eR
R5bfOzIgy1qIB8RYb6qOXRBw1oA4snBDqtUjDv/lbHLJN+IbzM4oU+e3Lt9rXyLX
VY289ewONPweXHqSCnTL91w+wkU1peIFV2QhZ+upUCdCtwOn5hnJPNgxtbklFoya
C8W3Z7Xx7He2QDJsEWAqX197efw0L6j8X8Tyd8Uwb7zUB1tfMGhHfm9EwejPAtzx
4GztQNtNMtGS2oGZLQBLV9hib4dDL92iiZeckg2LAf4GsJofLLR8mcHCRoqVbQJ1
YQIDAQAB
-----END PUBLIC KEY-----
";

    #[test]
    fn encrypts_to_the_modulus_size() {
        let out = encrypt_password(b"secret\0", KEY.as_bytes()).unwrap();
        assert_eq!(out.len(), 256);
        let with_nul = format!("{KEY}\0");
        assert_eq!(encrypt_password(b"secret\0", with_nul.as_bytes()).unwrap().len(), 256);
    }

    #[test]
    fn malformed_keys_and_long_passwords_are_errors() {
        let bad: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"garbage".to_vec(),
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".to_vec(),
            b"-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n".to_vec(),
            KEY.as_bytes()[..200].to_vec(),
        ];
        for key in bad {
            assert!(encrypt_password(b"x\0", &key).is_err(), "{}", String::from_utf8_lossy(&key));
        }
        assert!(encrypt_password(&[b'x'; 215], KEY.as_bytes()).is_err());
    }

    #[test]
    fn truncated_der_never_panics() {
        let block = pem::parse(KEY).unwrap();
        let der = block.contents();
        for cut in 0..der.len() {
            let _ = subject_public_key_info(&der[..cut]);
            let mut flipped = der.to_vec();
            flipped[cut] ^= 0xFF;
            let _ = subject_public_key_info(&flipped);
        }
    }
}
