//! The echo server round-trips frames however the bytes are cut, and a bad frame closes only
//! its own connection.

mod util;

use server_core::Service;
use std::time::Duration;
use util::*;

#[test]
fn whole_frames_round_trip() {
    let (_service, listener) = echo_server(Service::builder().threads(2));
    let mut c = connect(&listener);
    for i in 0..20u16 {
        let f = frame(i, &vec![i as u8; usize::from(i) * 7]);
        write_all(&mut c, &f);
        assert_eq!(read_frame(&mut c).unwrap(), f);
    }
}

#[test]
fn the_write_cost_is_measured_once_something_was_written() {
    let (service, listener) = echo_server(Service::builder().threads(2));
    assert_eq!(service.handle().write_cost(), None);
    let mut c = connect(&listener);
    for i in 0..10u16 {
        let f = frame(i, b"cost");
        write_all(&mut c, &f);
        assert_eq!(read_frame(&mut c).unwrap(), f);
    }
    let cost = service.handle().write_cost().expect("ten writes were made");
    // A sample counts for at most a millisecond per write, however slow the machine.
    assert!(
        cost > Duration::ZERO && cost <= Duration::from_millis(1),
        "{cost:?}"
    );
}

#[test]
fn frames_split_byte_by_byte_arrive_whole() {
    let (_service, listener) = echo_server(Service::builder().threads(1));
    let mut c = connect(&listener);
    let f = frame(9, b"split into single bytes");
    for b in &f {
        write_all(&mut c, std::slice::from_ref(b));
        std::thread::sleep(Duration::from_micros(200));
    }
    assert_eq!(read_frame(&mut c).unwrap(), f);
}

#[test]
fn fifty_frames_in_one_write_all_come_back_in_order() {
    let (_service, listener) = echo_server(Service::builder().threads(2));
    let mut c = connect(&listener);
    let frames: Vec<Vec<u8>> = (0..50u16)
        .map(|i| frame(i, &i.to_le_bytes().repeat(i.into())))
        .collect();
    write_all(&mut c, &frames.concat());
    for f in &frames {
        assert_eq!(&read_frame(&mut c).unwrap(), f);
    }
}

#[test]
fn max_size_frames_round_trip() {
    let (_service, listener) = echo_server(Service::builder().threads(1));
    let mut c = connect(&listener);
    let f = frame(1, &vec![0xAB; 65_535 - 4]);
    write_all(&mut c, &f);
    assert_eq!(read_frame(&mut c).unwrap(), f);
}

#[test]
fn size_zero_closes_only_that_connection() {
    let (_service, listener) = echo_server(Service::builder().threads(2));
    let mut good = connect(&listener);
    let mut bad = connect(&listener);
    write_all(&mut bad, &[0, 0, 1, 0]);
    assert!(
        closed_by_server(&mut bad, TIMEOUT),
        "size 0 must close the session"
    );
    let f = frame(3, b"still here");
    write_all(&mut good, &f);
    assert_eq!(read_frame(&mut good).unwrap(), f);
}

#[test]
fn sizes_below_header_and_above_max_are_rejected() {
    let (_service, listener) = echo_server(Service::builder().threads(1).max_packet_size(1024));
    for header in [[2u8, 0], [3, 0], [0x01, 0x04]] {
        let mut c = connect(&listener);
        write_all(&mut c, &header);
        assert!(
            closed_by_server(&mut c, TIMEOUT),
            "header {header:?} must close"
        );
    }
}
