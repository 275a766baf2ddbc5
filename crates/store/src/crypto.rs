//! Encryption at rest of registry passwords.
//!
//! A password is sealed with XChaCha20-Poly1305 under the store's [`SecretKey`], with a random 24-byte
//! nonce per value, and stored as `v1:` followed by the base64 of the nonce and the ciphertext (which ends
//! with the 16-byte tag). The associated data is the row's namespace and name, so a sealed value copied to
//! another row does not open. Nothing here logs, prints or returns a password in an error.

use std::{
    fmt,
    io::{self, Read, Write},
    path::Path,
    sync::Arc,
};

use base64::{Engine, engine::general_purpose::STANDARD};
use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};
use image_core::{Error, Result, kube::Secret};
use zeroize::Zeroizing;

/// The length of a key in bytes.
pub const KEY_LEN: usize = 32;

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// The format of sealed values; a later format (another algorithm, a key id) gets another prefix.
const FORMAT: &str = "v1:";

/// The 32-byte key that encrypts registry passwords at rest. Its `Debug` never shows it, and its bytes are
/// wiped from memory when it is dropped.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<[u8; KEY_LEN]>);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl SecretKey {
    /// A new random key, from the operating system's generator.
    pub fn generate() -> SecretKey {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        fill_random(&mut bytes[..]);
        SecretKey(bytes)
    }

    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> SecretKey {
        SecretKey(Zeroizing::new(bytes))
    }

    /// Lends the key's bytes to `derive`, which makes another key of them (the built-in registry's token
    /// key, say); the bytes themselves never leave.
    pub fn derive_with<T>(&self, derive: impl FnOnce(&[u8]) -> T) -> T {
        derive(&self.0[..])
    }

    /// A key written as 64 hexadecimal digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<SecretKey> {
        let text = text.trim();
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        if text.len() != 2 * KEY_LEN || hex::decode_to_slice(text, &mut bytes[..]).is_err() {
            return Err(Error::invalid("secret_key", "must be 64 hexadecimal digits (32 bytes)"));
        }
        Ok(SecretKey(bytes))
    }

    /// Reads the key file at `path`, or creates it with a new random key when there is none.
    ///
    /// The file holds the key as 32 raw bytes, or as 64 hexadecimal digits with an optional trailing
    /// newline; a new file gets the hexadecimal form. On Unix a new file is created with mode 0600 (its
    /// missing directories with 0700), and an existing file that its group or others may access is
    /// refused. Two processes creating the file at once end up with the same key: the file appears
    /// complete or not at all (written aside, then hard-linked into place).
    pub fn load_or_create(path: &Path) -> Result<SecretKey> {
        match read_key_file(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(key_file_error(path, "cannot read the secret key file", e)),
            Ok(contents) => return SecretKey::from_file_contents(path, &contents),
        }
        let key = SecretKey::generate();
        let mut text = Zeroizing::new(hex::encode(&key.0[..]));
        text.push('\n');
        match create_key_file(path, text.as_bytes()) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "created a new secret key file");
                Ok(key)
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let contents =
                    read_key_file(path).map_err(|e| key_file_error(path, "cannot read the secret key file", e))?;
                SecretKey::from_file_contents(path, &contents)
            }
            Err(e) => Err(key_file_error(path, "cannot create the secret key file", e)),
        }
    }

    fn from_file_contents(path: &Path, contents: &[u8]) -> Result<SecretKey> {
        if contents.len() == KEY_LEN {
            let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
            bytes.copy_from_slice(contents);
            return Ok(SecretKey(bytes));
        }
        let text = contents.strip_suffix(b"\n").unwrap_or(contents);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        if text.len() == 2 * KEY_LEN && hex::decode_to_slice(text, &mut bytes[..]).is_ok() {
            return Ok(SecretKey(bytes));
        }
        Err(Error::storage(format!(
            "the secret key file {} must hold 32 raw bytes or 64 hexadecimal digits (it has {} bytes)",
            path.display(),
            contents.len()
        )))
    }
}

fn key_file_error(path: &Path, what: &str, e: io::Error) -> Error {
    Error::storage(format!("{what} {}: {e}", path.display()))
}

/// The file's contents, after checking that only its owner may access it.
fn read_key_file(path: &Path) -> io::Result<Zeroizing<Vec<u8>>> {
    let file = std::fs::File::open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata()?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("its mode is {mode:04o}, so its group or others may read it; make it 0600 (chmod 600)"),
            ));
        }
    }
    let mut contents = Zeroizing::new(Vec::with_capacity(2 * KEY_LEN + 1));
    // A key file is small; anything much longer is not one.
    file.take(1024).read_to_end(&mut contents)?;
    Ok(contents)
}

/// Writes `contents` to a new file beside `path` (mode 0600), then links it into place, which fails with
/// `AlreadyExists` when `path` exists.
fn create_key_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    create_private_dir_all(dir)?;
    let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut nonce = [0u8; 8];
    fill_random(&mut nonce);
    let mut aside_name = name.to_os_string();
    aside_name.push(format!(".{}.tmp", hex::encode(nonce)));
    let aside = dir.join(aside_name);
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&aside)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::hard_link(&aside, path)
    })();
    let _ = std::fs::remove_file(&aside);
    written
}

fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn fill_random(out: &mut [u8]) {
    // The operating system's random source; failing it, nothing can be sealed safely.
    getrandom::fill(out).expect("the operating system's random source failed");
}

/// Seals and opens passwords with the store's key, if it has one. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Sealer(Option<Arc<XChaCha20Poly1305>>);

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Sealer(<key>)" } else { "Sealer(no key)" })
    }
}

/// What binds a sealed value to its row. Names are DNS labels, so `/` cannot be part of one.
fn associated_data(namespace: &str, name: &str) -> Vec<u8> {
    format!("imagegate/registry-secret/v1/{namespace}/{name}").into_bytes()
}

impl Sealer {
    pub(crate) fn new(key: Option<&SecretKey>) -> Sealer {
        Sealer(key.map(|key| Arc::new(XChaCha20Poly1305::new(&chacha20poly1305::Key::from(*key.0)))))
    }

    pub(crate) fn has_key(&self) -> bool {
        self.0.is_some()
    }

    /// The stored form of the password of registry secret `namespace/name`.
    pub(crate) fn seal(&self, namespace: &str, name: &str, password: &Secret) -> Result<String> {
        let Some(cipher) = &self.0 else {
            return Err(Error::storage(
                "no secret key configured: registry passwords are encrypted at rest, so the store needs a secret key \
                 (StoreOptions::secret_key) to create registry secrets",
            ));
        };
        let mut nonce = XNonce::default();
        fill_random(&mut nonce[..]);
        let aad = associated_data(namespace, name);
        let ciphertext =
            cipher.encrypt(&nonce, Payload { msg: password.expose().as_bytes(), aad: &aad }).map_err(|_| {
                Error::storage(format!("cannot encrypt the password of registry secret {namespace}/{name}"))
            })?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(format!("{FORMAT}{}", STANDARD.encode(sealed)))
    }

    /// The password that `seal` sealed for registry secret `namespace/name`.
    pub(crate) fn open(&self, namespace: &str, name: &str, sealed: &str) -> Result<Secret> {
        let what = || format!("cannot decrypt the password of registry secret {namespace}/{name}");
        let Some(cipher) = &self.0 else {
            return Err(Error::unavailable(format!("{}: no secret key configured", what())));
        };
        let bytes = sealed
            .strip_prefix(FORMAT)
            .and_then(|b64| STANDARD.decode(b64).ok())
            .filter(|bytes| bytes.len() >= NONCE_LEN + TAG_LEN)
            .ok_or_else(|| {
                tracing::error!(namespace, name, "a stored registry password is not in the sealed format");
                Error::storage(format!("{}: the stored value is not in the sealed format", what()))
            })?;
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let aad = associated_data(namespace, name);
        let plaintext = cipher
            .decrypt(
                &XNonce::try_from(nonce).expect("the nonce is NONCE_LEN bytes"),
                Payload { msg: ciphertext, aad: &aad },
            )
            .map_err(|_| {
                tracing::error!(namespace, name, "a stored registry password does not decrypt with this store's key");
                Error::unavailable(format!(
                    "{}: the secret key in use is not the one it was sealed with, or the stored value was altered; \
                     restore the key file it was sealed with (--secret-key-file), or delete the secret and create \
                     it again",
                    what()
                ))
            })?;
        let plaintext = Zeroizing::new(plaintext);
        let password = std::str::from_utf8(&plaintext)
            .map_err(|_| Error::storage(format!("{}: the decrypted password is not UTF-8", what())))?;
        Ok(Secret::new(password))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_row() {
        let key = SecretKey::generate();
        let sealer = Sealer::new(Some(&key));
        let password = Secret::new("Harbor12345");
        let sealed = sealer.seal("default", "harbor-prod", &password).unwrap();
        assert!(sealed.starts_with("v1:") && !sealed.contains("Harbor12345"));
        assert_ne!(sealed, sealer.seal("default", "harbor-prod", &password).unwrap(), "a fresh nonce each time");
        assert_eq!(sealer.open("default", "harbor-prod", &sealed).unwrap(), password);
        assert_eq!(Sealer::new(Some(&key.clone())).open("default", "harbor-prod", &sealed).unwrap(), password);

        let message = |r: Result<Secret>| r.unwrap_err().to_string();
        let moved = message(sealer.open("default", "harbor-prod2", &sealed));
        assert!(moved.contains("registry secret default/harbor-prod2") && moved.contains("altered"), "{moved}");
        let other = message(Sealer::new(Some(&SecretKey::generate())).open("default", "harbor-prod", &sealed));
        assert!(other.contains("not the one it was sealed with"), "{other}");
        assert_eq!(
            Sealer::new(Some(&SecretKey::generate())).open("default", "harbor-prod", &sealed).unwrap_err().code(),
            image_core::ErrorCode::Unavailable
        );
        let mangled = message(sealer.open("default", "harbor-prod", "v1:AAAA"));
        assert!(mangled.contains("not in the sealed format"), "{mangled}");
        let none = message(Sealer::default().open("default", "harbor-prod", &sealed));
        assert!(none.contains("no secret key configured"), "{none}");
        let none = message(Sealer::default().seal("default", "harbor-prod", &password).map(Secret::new));
        assert!(none.contains("no secret key configured"), "{none}");
    }

    #[test]
    fn keys_never_print() {
        let key = SecretKey::from_bytes([7; KEY_LEN]);
        assert_eq!(format!("{key:?}"), "SecretKey(<redacted>)");
        assert_eq!(format!("{:?}", Sealer::new(Some(&key))), "Sealer(<key>)");
        let hex_key = SecretKey::from_hex(&"07".repeat(KEY_LEN)).unwrap();
        let sealed = Sealer::new(Some(&key)).seal("a", "b", &Secret::new("p")).unwrap();
        assert_eq!(Sealer::new(Some(&hex_key)).open("a", "b", &sealed).unwrap().expose(), "p");
        assert!(SecretKey::from_hex("07").is_err());
        assert!(SecretKey::from_hex(&"zz".repeat(KEY_LEN)).is_err());
    }
}
