//! Kubernetes' protobuf request encoding, for the few built-in kinds clients create that
//! way: kubectl's typed clients send `application/vnd.kubernetes.protobuf` (e.g. `kubectl
//! create secret`). Decoded into the same JSON the rest of the fake handles: the envelope
//! (`k8s\0` + `runtime.Unknown`), `ObjectMeta` (name, generateName, namespace, labels,
//! annotations) and the bodies of Secret, ConfigMap and Namespace. Anything else is
//! refused with 415, as a server without that encoding would.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

/// Content type of the encoding.
pub(crate) const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\0";
/// Deepest message nesting decoded (bounded recursion).
const MAX_DEPTH: usize = 4;

/// One field value on the wire.
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(out);
        }
    }
    None
}

/// Splits a message into `(field number, value)`; `None` when malformed.
fn fields(buf: &[u8]) -> Option<Vec<(u64, Wire<'_>)>> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let value = match key & 7 {
            0 => Wire::Varint(varint(buf, &mut pos)?),
            1 => {
                pos = pos.checked_add(8).filter(|p| *p <= buf.len())?;
                continue;
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).ok()?;
                let end = pos.checked_add(len).filter(|e| *e <= buf.len())?;
                let bytes = &buf[pos..end];
                pos = end;
                Wire::Bytes(bytes)
            }
            5 => {
                pos = pos.checked_add(4).filter(|p| *p <= buf.len())?;
                continue;
            }
            _ => return None,
        };
        out.push((key >> 3, value));
    }
    Some(out)
}

fn text(bytes: &[u8]) -> Option<String> {
    String::from_utf8(bytes.to_vec()).ok()
}

/// A `map<string, string|bytes>` entry list into a JSON object (bytes as base64).
fn map_entry(into: &mut Map<String, Value>, entry: &[u8], bytes_values: bool) -> Option<()> {
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    for (n, w) in fields(entry)? {
        if let Wire::Bytes(b) = w {
            match n {
                1 => k = text(b)?,
                2 if bytes_values => v = json!(STANDARD.encode(b)),
                2 => v = json!(text(b)?),
                _ => {}
            }
        }
    }
    into.insert(k, v);
    Some(())
}

fn object_meta(buf: &[u8], depth: usize) -> Option<Value> {
    if depth > MAX_DEPTH {
        return None;
    }
    let mut meta = Map::new();
    let (mut labels, mut annotations) = (Map::new(), Map::new());
    for (n, w) in fields(buf)? {
        let Wire::Bytes(b) = w else { continue };
        match n {
            1 => drop(meta.insert("name".into(), json!(text(b)?))),
            2 => drop(meta.insert("generateName".into(), json!(text(b)?))),
            3 => drop(meta.insert("namespace".into(), json!(text(b)?))),
            11 => map_entry(&mut labels, b, false)?,
            12 => map_entry(&mut annotations, b, false)?,
            _ => {}
        }
    }
    if !labels.is_empty() {
        meta.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    Some(Value::Object(meta))
}

/// Decodes a protobuf request body of `kind` into JSON; `None` when the kind is not one
/// the fake decodes or the bytes are malformed.
pub(crate) fn decode(body: &[u8], kind: &str) -> Option<Value> {
    let unknown = body.strip_prefix(MAGIC)?;
    let mut raw = None;
    for (n, w) in fields(unknown)? {
        if let (2, Wire::Bytes(b)) = (n, w) {
            raw = Some(b);
        }
    }
    let mut obj = Map::new();
    let (mut data, mut string_data, mut binary_data) = (Map::new(), Map::new(), Map::new());
    for (n, w) in fields(raw?)? {
        match (kind, n, w) {
            (_, 1, Wire::Bytes(b)) => drop(obj.insert("metadata".into(), object_meta(b, 1)?)),
            ("Secret", 2, Wire::Bytes(b)) => map_entry(&mut data, b, true)?,
            ("Secret", 3, Wire::Bytes(b)) => drop(obj.insert("type".into(), json!(text(b)?))),
            ("Secret", 4, Wire::Bytes(b)) => map_entry(&mut string_data, b, false)?,
            ("Secret" | "ConfigMap", 5 | 4, Wire::Varint(v)) => {
                drop(obj.insert("immutable".into(), json!(v != 0)))
            }
            ("ConfigMap", 2, Wire::Bytes(b)) => map_entry(&mut data, b, false)?,
            ("ConfigMap", 3, Wire::Bytes(b)) => map_entry(&mut binary_data, b, true)?,
            ("Secret" | "ConfigMap" | "Namespace", _, _) => {}
            _ => return None,
        }
    }
    for (name, m) in [
        ("data", data),
        ("stringData", string_data),
        ("binaryData", binary_data),
    ] {
        if !m.is_empty() {
            obj.insert(name.into(), Value::Object(m));
        }
    }
    Some(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![((n << 3) | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn decodes_a_secret_and_refuses_garbage() {
        let meta = [field(1, b"keys"), field(3, b"default")].concat();
        let entry = [field(1, b"cosign.pub"), field(2, b"PUB")].concat();
        let secret = [field(1, &meta), field(2, &entry), field(3, b"Opaque")].concat();
        let body = [MAGIC.to_vec(), field(2, &secret)].concat();
        let v = decode(&body, "Secret").unwrap();
        assert_eq!(
            v,
            json!({"metadata": {"name": "keys", "namespace": "default"}, "data": {"cosign.pub": "UFVC"}, "type": "Opaque"})
        );
        assert!(decode(&body, "Pod").is_none());
        assert!(decode(b"k8s\0\x12\xff", "Secret").is_none());
        assert!(decode(b"{}", "Secret").is_none());
    }
}
