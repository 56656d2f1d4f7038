//! Opt-in helpers that turn typed keys and values into record bytes and
//! back, as Kafka's `Serializer`/`Deserializer`. Nothing in
//! [`Producer`](crate::Producer) or [`Consumer`](crate::Consumer) needs
//! them: records are [`Bytes`], and these only save the conversion code.
//!
//! - [`Serializer`] / [`Deserializer`]: the two traits.
//! - [`BytesSerde`]: raw bytes ([`Bytes`], `Vec<u8>`), no conversion.
//! - [`StringSerde`]: UTF-8 text; invalid UTF-8 is an error, not a lossy
//!   conversion.
//! - [`Json`]: any `serde` type as JSON.
//! - [`ConsumerRecordExt`]: `record.value_str()`, `record.value_json()` and
//!   friends on a [`ConsumerRecord`].
//!
//! Errors are [`Error::Serialize`] and [`Error::Deserialize`].

use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::consumer::ConsumerRecord;
use crate::error::{Error, Result};

/// Turns a `T` into the bytes of a record key or value.
pub trait Serializer<T: ?Sized> {
    /// The bytes for `value`.
    ///
    /// # Errors
    ///
    /// [`Error::Serialize`] when `value` has no representation in this
    /// format.
    fn serialize(&self, value: &T) -> Result<Bytes>;
}

/// Turns the bytes of a record key or value into a `T`.
pub trait Deserializer<T> {
    /// The `T` that `bytes` encode.
    ///
    /// # Errors
    ///
    /// [`Error::Deserialize`] when `bytes` are not a valid `T` in this
    /// format.
    fn deserialize(&self, bytes: &Bytes) -> Result<T>;
}

/// Raw bytes, passed through: Kafka's `ByteArraySerializer`. Serializing
/// [`Bytes`] and deserializing to [`Bytes`] do not copy.
///
/// ```
/// use bytes::Bytes;
/// use runnel_client::serialization::{BytesSerde, Deserializer, Serializer};
///
/// let bytes = BytesSerde.serialize(&vec![1u8, 2, 3])?;
/// assert_eq!(&bytes[..], &[1, 2, 3]);
/// let back: Vec<u8> = BytesSerde.deserialize(&bytes)?;
/// assert_eq!(back, [1, 2, 3]);
/// let same: Bytes = BytesSerde.deserialize(&bytes)?;
/// assert_eq!(same.as_ptr(), bytes.as_ptr()); // no copy
/// # Ok::<(), runnel_client::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesSerde;

impl Serializer<Bytes> for BytesSerde {
    fn serialize(&self, value: &Bytes) -> Result<Bytes> {
        Ok(value.clone())
    }
}

impl Serializer<Vec<u8>> for BytesSerde {
    fn serialize(&self, value: &Vec<u8>) -> Result<Bytes> {
        Ok(Bytes::copy_from_slice(value))
    }
}

impl Serializer<[u8]> for BytesSerde {
    fn serialize(&self, value: &[u8]) -> Result<Bytes> {
        Ok(Bytes::copy_from_slice(value))
    }
}

impl Deserializer<Bytes> for BytesSerde {
    fn deserialize(&self, bytes: &Bytes) -> Result<Bytes> {
        Ok(bytes.clone())
    }
}

impl Deserializer<Vec<u8>> for BytesSerde {
    fn deserialize(&self, bytes: &Bytes) -> Result<Vec<u8>> {
        Ok(bytes.to_vec())
    }
}

/// UTF-8 text: Kafka's `StringSerializer`/`StringDeserializer`.
/// Deserializing bytes that are not UTF-8 fails and says where.
///
/// ```
/// use bytes::Bytes;
/// use runnel_client::serialization::{Deserializer, Serializer, StringSerde};
///
/// let bytes = StringSerde.serialize("héllo")?;
/// let text: String = StringSerde.deserialize(&bytes)?;
/// assert_eq!(text, "héllo");
///
/// let err = StringSerde.deserialize(&Bytes::from_static(b"ab\xff")).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "cannot deserialize UTF-8 string: invalid utf-8 sequence of 1 bytes from index 2"
/// );
/// # Ok::<(), runnel_client::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct StringSerde;

/// The `format` named in [`StringSerde`]'s errors.
const UTF8: &str = "UTF-8 string";

impl Serializer<str> for StringSerde {
    fn serialize(&self, value: &str) -> Result<Bytes> {
        Ok(Bytes::copy_from_slice(value.as_bytes()))
    }
}

impl Serializer<String> for StringSerde {
    fn serialize(&self, value: &String) -> Result<Bytes> {
        Ok(Bytes::copy_from_slice(value.as_bytes()))
    }
}

impl Deserializer<String> for StringSerde {
    fn deserialize(&self, bytes: &Bytes) -> Result<String> {
        Ok(utf8(bytes)?.to_owned())
    }
}

fn utf8(bytes: &[u8]) -> Result<&str> {
    std::str::from_utf8(bytes).map_err(|e| Error::Deserialize {
        format: UTF8,
        message: e.to_string(),
    })
}

/// Any `serde` type as JSON (`serde_json`).
///
/// ```
/// use runnel_client::serialization::{Deserializer, Json, Serializer};
///
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Order {
///     id: u64,
///     item: String,
/// }
///
/// let json = Json::<Order>::new();
/// let order = Order { id: 7, item: "tea".into() };
/// let bytes = json.serialize(&order)?;
/// assert_eq!(&bytes[..], br#"{"id":7,"item":"tea"}"#);
/// assert_eq!(json.deserialize(&bytes)?, order);
///
/// let err = json.deserialize(&bytes::Bytes::from_static(b"{\"id\":7}")).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "cannot deserialize JSON: missing field `item` at line 1 column 8"
/// );
/// # Ok::<(), runnel_client::Error>(())
/// ```
pub struct Json<T> {
    // fn() -> T: a codec for T holds no T, so Json<T> is Send, Sync and
    // Copy whatever T is.
    _type: PhantomData<fn() -> T>,
}

/// The `format` named in [`Json`]'s errors.
const JSON: &str = "JSON";

impl<T> Json<T> {
    /// The JSON codec for `T`.
    pub const fn new() -> Self {
        Json { _type: PhantomData }
    }
}

// Not derived: derives would require `T: Default/Clone/Debug`.
impl<T> Default for Json<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for Json<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Json<T> {}

impl<T> fmt::Debug for Json<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Json<{}>", std::any::type_name::<T>())
    }
}

impl<T: Serialize> Serializer<T> for Json<T> {
    fn serialize(&self, value: &T) -> Result<Bytes> {
        serde_json::to_vec(value)
            .map(Bytes::from)
            .map_err(|e| Error::Serialize {
                format: JSON,
                message: e.to_string(),
            })
    }
}

impl<T: DeserializeOwned> Deserializer<T> for Json<T> {
    fn deserialize(&self, bytes: &Bytes) -> Result<T> {
        json(bytes)
    }
}

fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Deserialize {
        format: JSON,
        message: e.to_string(),
    })
}

/// Typed views of a [`ConsumerRecord`]'s key and value. `Ok(None)` is a
/// null key or value (a tombstone), which no format decodes.
///
/// ```
/// use bytes::Bytes;
/// use runnel_client::ConsumerRecord;
/// use runnel_client::serialization::{ConsumerRecordExt, StringSerde};
///
/// let record = ConsumerRecord {
///     topic: "orders".into(),
///     partition: 0,
///     offset: 41,
///     timestamp: 1_700_000_000_000,
///     key: Some(Bytes::from_static(b"user-1")),
///     value: Some(Bytes::from_static(br#"{"id":7,"item":"tea"}"#)),
///     headers: vec![],
/// };
/// assert_eq!(record.key_str()?, Some("user-1"));
/// let order: serde_json::Value = record.value_json()?.expect("not a tombstone");
/// assert_eq!(order["item"], "tea");
/// let text: Option<String> = record.value_with(&StringSerde)?;
/// assert!(text.unwrap().starts_with('{'));
/// # Ok::<(), runnel_client::Error>(())
/// ```
pub trait ConsumerRecordExt {
    /// The key as UTF-8 text, borrowed.
    ///
    /// # Errors
    ///
    /// [`Error::Deserialize`] if the key is not UTF-8.
    fn key_str(&self) -> Result<Option<&str>>;

    /// The value as UTF-8 text, borrowed.
    ///
    /// # Errors
    ///
    /// [`Error::Deserialize`] if the value is not UTF-8.
    fn value_str(&self) -> Result<Option<&str>>;

    /// The value parsed as JSON into `T`.
    ///
    /// # Errors
    ///
    /// [`Error::Deserialize`] if the value is not JSON for a `T`.
    fn value_json<T: DeserializeOwned>(&self) -> Result<Option<T>>;

    /// The key decoded by `deserializer`.
    ///
    /// # Errors
    ///
    /// Whatever `deserializer` returns.
    fn key_with<T>(&self, deserializer: &impl Deserializer<T>) -> Result<Option<T>>;

    /// The value decoded by `deserializer`.
    ///
    /// # Errors
    ///
    /// Whatever `deserializer` returns.
    fn value_with<T>(&self, deserializer: &impl Deserializer<T>) -> Result<Option<T>>;
}

impl ConsumerRecordExt for ConsumerRecord {
    fn key_str(&self) -> Result<Option<&str>> {
        self.key.as_deref().map(utf8).transpose()
    }

    fn value_str(&self) -> Result<Option<&str>> {
        self.value.as_deref().map(utf8).transpose()
    }

    fn value_json<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        self.value.as_deref().map(json).transpose()
    }

    fn key_with<T>(&self, deserializer: &impl Deserializer<T>) -> Result<Option<T>> {
        self.key
            .as_ref()
            .map(|b| deserializer.deserialize(b))
            .transpose()
    }

    fn value_with<T>(&self, deserializer: &impl Deserializer<T>) -> Result<Option<T>> {
        self.value
            .as_ref()
            .map(|b| deserializer.deserialize(b))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn record(key: Option<&'static [u8]>, value: Option<&'static [u8]>) -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            timestamp: 0,
            key: key.map(Bytes::from_static),
            value: value.map(Bytes::from_static),
            headers: vec![],
        }
    }

    #[test]
    fn bytes_pass_through() {
        let b = Bytes::from_static(b"\x00\xff");
        assert_eq!(BytesSerde.serialize(&b).unwrap().as_ptr(), b.as_ptr());
        assert_eq!(&BytesSerde.serialize(&b"ab"[..]).unwrap()[..], b"ab");
        let v: Vec<u8> = BytesSerde.deserialize(&b).unwrap();
        assert_eq!(v, [0, 255]);
    }

    #[test]
    fn strings_are_strict_utf8() {
        assert_eq!(&StringSerde.serialize("ü").unwrap()[..], "ü".as_bytes());
        assert_eq!(&StringSerde.serialize(&"x".to_owned()).unwrap()[..], b"x");
        let err = Deserializer::<String>::deserialize(&StringSerde, &Bytes::from_static(b"\xc3"))
            .unwrap_err();
        assert!(matches!(
            err,
            Error::Deserialize {
                format: "UTF-8 string",
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "cannot deserialize UTF-8 string: incomplete utf-8 byte sequence from index 0"
        );
    }

    #[test]
    fn json_round_trip_and_errors() {
        let json = Json::<BTreeMap<String, u32>>::new();
        let map = BTreeMap::from([("a".to_owned(), 1), ("b".to_owned(), 2)]);
        let bytes = json.serialize(&map).unwrap();
        assert_eq!(&bytes[..], br#"{"a":1,"b":2}"#);
        assert_eq!(json.deserialize(&bytes).unwrap(), map);
        let err = json
            .deserialize(&Bytes::from_static(b"{\"a\":-1}"))
            .unwrap_err();
        assert!(
            matches!(err, Error::Deserialize { format: "JSON", .. }),
            "{err}"
        );

        // A map with non-string keys has no JSON form.
        let bad = Json::<BTreeMap<(u8, u8), u8>>::new();
        let err = bad.serialize(&BTreeMap::from([((1, 2), 3)])).unwrap_err();
        assert!(
            matches!(err, Error::Serialize { format: "JSON", .. }),
            "{err}"
        );
        assert!(err.to_string().starts_with("cannot serialize JSON: "));
        assert_eq!(
            format!("{bad:?}"),
            format!("Json<{}>", std::any::type_name::<BTreeMap<(u8, u8), u8>>())
        );
    }

    #[test]
    fn consumer_record_views() {
        let r = record(Some(b"k"), Some(b"[1,2]"));
        assert_eq!(r.key_str().unwrap(), Some("k"));
        assert_eq!(r.value_str().unwrap(), Some("[1,2]"));
        assert_eq!(r.value_json::<Vec<u8>>().unwrap(), Some(vec![1, 2]));
        assert_eq!(r.key_with(&StringSerde).unwrap(), Some("k".to_owned()));
        let v: Option<Bytes> = r.value_with(&BytesSerde).unwrap();
        assert_eq!(v.as_deref(), Some(&b"[1,2]"[..]));

        let tombstone = record(None, None);
        assert_eq!(tombstone.key_str().unwrap(), None);
        assert_eq!(tombstone.value_json::<u8>().unwrap(), None);

        let bad = record(Some(b"\xff"), Some(b"{"));
        assert!(bad.key_str().is_err());
        assert!(bad.value_json::<u8>().is_err());
    }
}
