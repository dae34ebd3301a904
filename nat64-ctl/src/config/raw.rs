//! The file as serde reads it, before validation: every value error names its key.
//!
//! serde_json names the key of an unknown or missing field but not that of a value of
//! the wrong type. The `deserialize_with` helpers below prefix such errors with the key
//! path; serde_json takes the trailing "at line L column C" back out of the message
//! (`Error::custom`), so the position survives the rewrapping.

use std::{cell::Cell, fmt, marker::PhantomData};

use serde::{
    Deserialize, Deserializer,
    de::{Error as _, MapAccess, SeqAccess, Visitor, value::MapAccessDeserializer},
};

fn with_key<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D, key: &str) -> Result<T, D::Error> {
    T::deserialize(d).map_err(|e| D::Error::custom(format_args!("{key}: {e}")))
}

/// A list whose element errors are prefixed with `key[index]`. Field errors inside an
/// element arrive as ".field: ..." and are joined to the index without a colon.
fn indexed<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
    key: &'static str,
) -> Result<Vec<T>, D::Error> {
    struct ListVisitor<'a, T> {
        key: &'static str,
        element_failed: &'a Cell<bool>,
        _t: PhantomData<T>,
    }

    impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<'_, T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            loop {
                match seq.next_element::<T>() {
                    Ok(Some(v)) => out.push(v),
                    Ok(None) => return Ok(out),
                    Err(e) => {
                        self.element_failed.set(true);
                        let msg = e.to_string();
                        let sep = if msg.starts_with('.') { "" } else { ": " };
                        return Err(A::Error::custom(format_args!("{}[{}]{sep}{msg}", self.key, out.len())));
                    }
                }
            }
        }
    }

    let element_failed = Cell::new(false);
    let visitor = ListVisitor { key, element_failed: &element_failed, _t: PhantomData };
    d.deserialize_seq(visitor)
        .map_err(|e| if element_failed.get() { e } else { D::Error::custom(format_args!("{key}: {e}")) })
}

macro_rules! keyed {
    ($($f:ident => $key:literal),* $(,)?) => {$(
        fn $f<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
            with_key(d, $key)
        }
    )*};
}

keyed! {
    de_instance => "instance",
    de_ipv4_addr => "ipv4-addr",
    de_ipv6_addr => "ipv6-addr",
    de_pool6 => "pool6",
    de_wkp_allow_non_global => "wkp-allow-non-global",
    de_amend_udp_checksum_zero => "amend-udp-checksum-zero",
    de_zeroize_traffic_class => "zeroize-traffic-class",
    de_xdp_tcp_gro => "xdp-tcp-gro",
    de_icmp_errors_on_drop => "icmp-errors-on-drop",
    de_lowest_ipv6_mtu => "lowest-ipv6-mtu",
    de_rfc6791v4_prefix => "rfc6791v4-prefix",
    de_rfc6791v6_prefix => "rfc6791v6-prefix",
    de_general_path => "general-path",
    de_mode => "mode",
    de_pref64 => "pref64",
    de_pref64_resolver => "pref64-resolver",
    de_dynamic_pool => "dynamic-pool",
    de_dynamic_pool_lease => "dynamic-pool-lease",
    de_state_file => "state-file",
    de_masquerade => "masquerade",
    de_masq_interface => "masquerade.interface",
    de_gp_interface => "general-path.interface",
    de_gp_ipv4_addr => "general-path.ipv4-addr",
    de_gp_ipv6_addr => "general-path.ipv6-addr",
    de_filtering => "filtering",
    de_udp_timeout => "udp-timeout",
    de_tcp_established_timeout => "tcp-established-timeout",
    de_tcp_transitory_timeout => "tcp-transitory-timeout",
    de_icmp_timeout => "icmp-timeout",
    de_port_block_size => "port-block-size",
    de_port_block_prefix => "port-block-prefix",
    de_port_block_host_length => "port-block-host-length",
    de_port_blocks_per_host => "port-blocks-per-host",
    de_bib_log => "bib-log",
    de_log_ipfix => ".ipfix",
    de_log_syslog => ".syslog",
    de_log_json => ".json",
    de_max_ports_per_host => "max-ports-per-host",
    de_subscriber_prefix_length => "subscriber-prefix-length",
    de_port_reuse_delay => "port-reuse-delay",
    de_max_sessions => "max-sessions",
    de_max_simultaneous_opens => "max-simultaneous-opens",
    de_icmpv6_error_source => "icmpv6-error-source",
    de_sync => "sync",
    de_sync_listen => "sync.listen",
    de_sync_key_file => "sync.key-file",
    de_pool4_prefix => ".prefix",
    de_pool4_ports => ".ports",
    de_bib_protocol => ".protocol",
    de_bib_ipv6 => ".ipv6",
    de_bib_ipv4 => ".ipv4",
    de_name => ".name",
    de_attach => ".attach",
    de_ipv4 => ".ipv4",
    de_ipv6 => ".ipv6",
}

macro_rules! keyed_list {
    ($($f:ident => $key:literal),* $(,)?) => {$(
        fn $f<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
            indexed(d, $key)
        }
    )*};
}

keyed_list! {
    de_interfaces => "interfaces",
    de_eamt => "eamt",
    de_denylist4 => "denylist4",
    de_ipv4_translatable => "ipv4-translatable",
    de_pool4 => "pool4",
    de_bib => "bib",
    de_sync_peers => "sync.peers",
    de_nat_log => "nat-log",
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", expecting = "a JSON object of nat64 settings")]
pub(super) struct RawConfig {
    #[serde(default, deserialize_with = "de_instance")]
    pub(super) instance: Option<String>,
    #[serde(deserialize_with = "de_interfaces")]
    pub(super) interfaces: Vec<RawInterface>,
    #[serde(default, deserialize_with = "de_ipv4_addr")]
    pub(super) ipv4_addr: Option<String>,
    #[serde(default, deserialize_with = "de_ipv6_addr")]
    pub(super) ipv6_addr: Option<String>,
    #[serde(default, deserialize_with = "de_pool6")]
    pub(super) pool6: Option<String>,
    #[serde(default, deserialize_with = "de_eamt")]
    pub(super) eamt: Vec<RawEam>,
    #[serde(default, deserialize_with = "de_denylist4")]
    pub(super) denylist4: Vec<String>,
    #[serde(default, deserialize_with = "de_ipv4_translatable")]
    pub(super) ipv4_translatable: Vec<String>,
    #[serde(default, deserialize_with = "de_wkp_allow_non_global")]
    pub(super) wkp_allow_non_global: bool,
    #[serde(default, deserialize_with = "de_amend_udp_checksum_zero")]
    pub(super) amend_udp_checksum_zero: bool,
    #[serde(default, deserialize_with = "de_zeroize_traffic_class")]
    pub(super) zeroize_traffic_class: bool,
    #[serde(default, deserialize_with = "de_xdp_tcp_gro")]
    pub(super) xdp_tcp_gro: bool,
    #[serde(default, deserialize_with = "de_icmp_errors_on_drop")]
    pub(super) icmp_errors_on_drop: Option<bool>,
    #[serde(default, deserialize_with = "de_lowest_ipv6_mtu")]
    pub(super) lowest_ipv6_mtu: Option<u64>,
    #[serde(default, deserialize_with = "de_rfc6791v4_prefix")]
    pub(super) rfc6791v4_prefix: Option<String>,
    #[serde(default, deserialize_with = "de_rfc6791v6_prefix")]
    pub(super) rfc6791v6_prefix: Option<String>,
    #[serde(default, deserialize_with = "de_general_path")]
    pub(super) general_path: Option<RawGeneralPathSetting>,
    #[serde(default, deserialize_with = "de_mode")]
    pub(super) mode: Option<String>,
    #[serde(default, deserialize_with = "de_pref64")]
    pub(super) pref64: Option<String>,
    #[serde(default, deserialize_with = "de_pref64_resolver")]
    pub(super) pref64_resolver: Option<String>,
    #[serde(default, deserialize_with = "de_dynamic_pool")]
    pub(super) dynamic_pool: Option<String>,
    #[serde(default, deserialize_with = "de_dynamic_pool_lease")]
    pub(super) dynamic_pool_lease: Option<u64>,
    #[serde(default, deserialize_with = "de_state_file")]
    pub(super) state_file: Option<String>,
    #[serde(default, deserialize_with = "de_masquerade")]
    pub(super) masquerade: Option<RawMasquerade>,
    #[serde(default, deserialize_with = "de_pool4")]
    pub(super) pool4: Vec<RawPool4>,
    #[serde(default, deserialize_with = "de_bib")]
    pub(super) bib: Vec<RawBib>,
    #[serde(default, deserialize_with = "de_filtering")]
    pub(super) filtering: Option<String>,
    #[serde(default, deserialize_with = "de_udp_timeout")]
    pub(super) udp_timeout: Option<u64>,
    #[serde(default, deserialize_with = "de_tcp_established_timeout")]
    pub(super) tcp_established_timeout: Option<u64>,
    #[serde(default, deserialize_with = "de_tcp_transitory_timeout")]
    pub(super) tcp_transitory_timeout: Option<u64>,
    #[serde(default, deserialize_with = "de_icmp_timeout")]
    pub(super) icmp_timeout: Option<u64>,
    #[serde(default, deserialize_with = "de_port_block_size")]
    pub(super) port_block_size: Option<u64>,
    #[serde(default, deserialize_with = "de_port_block_prefix")]
    pub(super) port_block_prefix: Option<String>,
    #[serde(default, deserialize_with = "de_port_block_host_length")]
    pub(super) port_block_host_length: Option<u64>,
    #[serde(default, deserialize_with = "de_port_blocks_per_host")]
    pub(super) port_blocks_per_host: Option<u64>,
    #[serde(default, deserialize_with = "de_bib_log")]
    pub(super) bib_log: Option<String>,
    #[serde(default, deserialize_with = "de_nat_log")]
    pub(super) nat_log: Vec<RawNatLog>,
    #[serde(default, deserialize_with = "de_max_ports_per_host")]
    pub(super) max_ports_per_host: Option<u64>,
    #[serde(default, deserialize_with = "de_subscriber_prefix_length")]
    pub(super) subscriber_prefix_length: Option<u64>,
    #[serde(default, deserialize_with = "de_port_reuse_delay")]
    pub(super) port_reuse_delay: Option<u64>,
    #[serde(default, deserialize_with = "de_max_sessions")]
    pub(super) max_sessions: Option<u64>,
    #[serde(default, deserialize_with = "de_max_simultaneous_opens")]
    pub(super) max_simultaneous_opens: Option<u64>,
    #[serde(default, deserialize_with = "de_icmpv6_error_source")]
    pub(super) icmpv6_error_source: Option<String>,
    #[serde(default, deserialize_with = "de_sync")]
    pub(super) sync: Option<RawSync>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = r#"an object {"listen": "ADDR:PORT", "peers": ["ADDR:PORT", ...], "key-file": "PATH"}"#
)]
pub(super) struct RawSync {
    #[serde(deserialize_with = "de_sync_listen")]
    pub(super) listen: String,
    #[serde(deserialize_with = "de_sync_peers")]
    pub(super) peers: Vec<String>,
    #[serde(deserialize_with = "de_sync_key_file")]
    pub(super) key_file: String,
}

/// One sink of `nat-log`: exactly one of the three keys.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = r#"an object {"ipfix": "ADDR:PORT"}, {"syslog": "unix:PATH" or "udp:ADDR:PORT"} or {"json": "stdout" or PATH}"#
)]
pub(super) struct RawNatLog {
    #[serde(default, deserialize_with = "de_log_ipfix")]
    pub(super) ipfix: Option<String>,
    #[serde(default, deserialize_with = "de_log_syslog")]
    pub(super) syslog: Option<String>,
    #[serde(default, deserialize_with = "de_log_json")]
    pub(super) json: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = r#"an object {"protocol": ..., "ipv6": ..., "ipv4": ...}"#)]
pub(super) struct RawBib {
    #[serde(deserialize_with = "de_bib_protocol")]
    pub(super) protocol: String,
    #[serde(deserialize_with = "de_bib_ipv6")]
    pub(super) ipv6: String,
    #[serde(deserialize_with = "de_bib_ipv4")]
    pub(super) ipv4: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = r#"an object {"prefix": ..., "ports": ...}"#)]
pub(super) struct RawPool4 {
    #[serde(deserialize_with = "de_pool4_prefix")]
    pub(super) prefix: String,
    #[serde(default, deserialize_with = "de_pool4_ports")]
    pub(super) ports: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = r#"an object {"interface": ...}"#)]
pub(super) struct RawMasquerade {
    #[serde(deserialize_with = "de_masq_interface")]
    pub(super) interface: String,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = r#"an object {"interface": ..., "ipv4-addr": ..., "ipv6-addr": ...}"#
)]
pub(super) struct RawGeneralPath {
    #[serde(deserialize_with = "de_gp_interface")]
    pub(super) interface: String,
    #[serde(default, deserialize_with = "de_gp_ipv4_addr")]
    pub(super) ipv4_addr: Option<String>,
    #[serde(default, deserialize_with = "de_gp_ipv6_addr")]
    pub(super) ipv6_addr: Option<String>,
}

/// `"general-path"`: `false` (none at all) or the object naming it.
pub(super) enum RawGeneralPathSetting {
    Off,
    On(RawGeneralPath),
}

impl<'de> Deserialize<'de> for RawGeneralPathSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SettingVisitor;

        impl<'de> Visitor<'de> for SettingVisitor {
            type Value = RawGeneralPathSetting;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"false or an object {"interface": ..., "ipv4-addr": ..., "ipv6-addr": ...}"#)
            }

            fn visit_bool<E: serde::de::Error>(self, on: bool) -> Result<Self::Value, E> {
                if on {
                    return Err(E::custom(
                        "true: there is one unless the key is false; to name it, give an object {\"interface\": ...}",
                    ));
                }
                Ok(RawGeneralPathSetting::Off)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawGeneralPath::deserialize(MapAccessDeserializer::new(map)).map(RawGeneralPathSetting::On)
            }
        }

        d.deserialize_any(SettingVisitor)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = r#"an object {"name": ..., "attach": ...}"#)]
pub(super) struct RawInterface {
    #[serde(deserialize_with = "de_name")]
    pub(super) name: String,
    #[serde(deserialize_with = "de_attach")]
    pub(super) attach: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = r#"an object {"ipv4": ..., "ipv6": ...}"#)]
pub(super) struct RawEam {
    #[serde(deserialize_with = "de_ipv4")]
    pub(super) ipv4: String,
    #[serde(deserialize_with = "de_ipv6")]
    pub(super) ipv6: String,
}
