//! Positions, geohash cells and the cells a geographic room search covers.
//!
//! A peer near position `P` looking for peers within `r` km joins the rooms of
//! [`covering_cells`]`(P, r)`: its own cell at [`precision_for_radius`] plus
//! the eight neighbouring cells. Cells are chosen at least as large as the
//! radius, so any peer within `r` km has its own cell in that 3x3 block.

use std::fmt;

use geohash::{Coord, Direction};

use crate::error::shown;
use crate::limits::{MAX_GEOHASH_LEN, MAX_RADIUS_KM, WIRE_GEOHASH_PRECISION};

/// Mean earth radius used for every distance, in kilometres.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// The 32 characters of the geohash alphabet, in value order.
pub const GEOHASH_ALPHABET: &str = "0123456789bcdefghjkmnpqrstuvwxyz";

/// Highest precision [`precision_for_radius`] ever returns (cells of about
/// 4.8 m x 4.8 m).
pub const MAX_SEARCH_PRECISION: usize = 9;

/// A point on earth, in decimal degrees.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// Latitude in degrees, -90 (south pole) to 90 (north pole).
    pub lat: f64,
    /// Longitude in degrees, -180 to 180 (east positive).
    pub lon: f64,
}

/// Why a position, geohash or radius was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeoError {
    /// The text is not a position, or a coordinate is not a finite number.
    #[error(
        "bad position '{}': use <lat>,<lon> in decimal degrees (e.g. 48.8566,2.3522) or a geohash",
        shown(.0)
    )]
    BadCoordinates(String),
    /// A coordinate is outside the valid range.
    #[error("position {lat},{lon} is out of range: latitude must be within -90..90 and longitude within -180..180")]
    OutOfRange {
        /// The rejected latitude.
        lat: f64,
        /// The rejected longitude.
        lon: f64,
    },
    /// The text is not a valid geohash.
    #[error(
        "bad geohash '{}': use 1 to {MAX_GEOHASH_LEN} characters from 0-9 and b-z except i, l and o",
        shown(.0)
    )]
    BadGeohash(String),
    /// The search radius is not a number in (0, [`MAX_RADIUS_KM`]].
    #[error("bad radius {0} km: use a number greater than 0 and at most {MAX_RADIUS_KM}")]
    BadRadius(f64),
}

/// Returns whether `s` is a canonical geohash: 1 to [`MAX_GEOHASH_LEN`]
/// characters of [`GEOHASH_ALPHABET`] (lowercase only).
pub fn is_geohash(s: &str) -> bool {
    (1..=MAX_GEOHASH_LEN).contains(&s.len())
        && s.bytes().all(|b| GEOHASH_ALPHABET.as_bytes().contains(&b))
}

/// Checks a geohash typed in any case and returns it lowercased.
pub fn normalize_geohash(s: &str) -> Result<String, GeoError> {
    if s.len() > MAX_GEOHASH_LEN {
        return Err(GeoError::BadGeohash(s.to_string()));
    }
    let lower = s.to_ascii_lowercase();
    if is_geohash(&lower) {
        Ok(lower)
    } else {
        Err(GeoError::BadGeohash(s.to_string()))
    }
}

impl Position {
    /// A position from latitude and longitude in degrees. Both must be finite,
    /// the latitude within [-90, 90] and the longitude within [-180, 180].
    pub fn new(lat: f64, lon: f64) -> Result<Position, GeoError> {
        if !lat.is_finite() || !lon.is_finite() {
            return Err(GeoError::BadCoordinates(format!("{lat},{lon}")));
        }
        if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
            return Err(GeoError::OutOfRange { lat, lon });
        }
        Ok(Position { lat, lon })
    }

    /// Parses `"<lat>,<lon>"` (spaces around either part are allowed, e.g.
    /// `"48.8566, 2.3522"`) or a geohash, which stands for the centre of its
    /// cell.
    pub fn parse(s: &str) -> Result<Position, GeoError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(GeoError::BadCoordinates(String::new()));
        }
        match s.split_once(',') {
            Some((lat, lon)) => {
                let bad = || GeoError::BadCoordinates(s.to_string());
                let lat: f64 = lat.trim().parse().map_err(|_| bad())?;
                let lon: f64 = lon.trim().parse().map_err(|_| bad())?;
                Position::new(lat, lon)
            }
            None => Position::from_geohash(s),
        }
    }

    /// The centre of the geohash cell `hash` (any case).
    pub fn from_geohash(hash: &str) -> Result<Position, GeoError> {
        let hash = normalize_geohash(hash)?;
        let (centre, _, _) =
            geohash::decode(&hash).map_err(|_| GeoError::BadGeohash(hash.clone()))?;
        Ok(Position {
            lat: centre.y,
            lon: centre.x,
        })
    }

    /// The geohash of the cell containing this position, with `precision`
    /// characters (clamped to 1..=[`MAX_GEOHASH_LEN`]).
    ///
    /// The north pole belongs to the northernmost row of cells and longitude
    /// 180 to the cells at -180 (the same meridian).
    pub fn geohash(&self, precision: usize) -> String {
        let precision = precision.clamp(1, MAX_GEOHASH_LEN);
        let coord = Coord {
            x: wrap_lon(self.lon),
            y: clamp_lat(self.lat),
        };
        geohash::encode(coord, precision).unwrap_or_default()
    }

    /// Great-circle (haversine) distance to `other`, in kilometres.
    pub fn distance_km(&self, other: &Position) -> f64 {
        let (phi1, phi2) = (self.lat.to_radians(), other.lat.to_radians());
        let dphi = phi2 - phi1;
        let dlambda = (other.lon - self.lon).to_radians();
        let a =
            (dphi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (dlambda / 2.0).sin().powi(2);
        let a = a.clamp(0.0, 1.0);
        2.0 * EARTH_RADIUS_KM * a.sqrt().atan2((1.0 - a).sqrt())
    }
}

impl fmt::Display for Position {
    /// `"<lat>,<lon>"` with 5 decimals, e.g. `"48.85660,2.35220"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.5},{:.5}", self.lat, self.lon)
    }
}

/// Largest latitude the geohash encoder is given: exactly 90 would wrap to
/// the southernmost row, so the pole is moved just inside the top row.
const MAX_ENCODABLE_LAT: f64 = 90.0 - 1e-9;

/// Brings a latitude into the range the geohash encoder handles (non-finite
/// values become 0).
fn clamp_lat(lat: f64) -> f64 {
    if lat.is_finite() {
        lat.clamp(-90.0, MAX_ENCODABLE_LAT)
    } else {
        0.0
    }
}

/// Brings a longitude into [-180, 180) (non-finite values become 0).
fn wrap_lon(lon: f64) -> f64 {
    if lon.is_finite() {
        let wrapped = (lon + 180.0).rem_euclid(360.0) - 180.0;
        // rem_euclid may round up to exactly 360 for tiny negative inputs.
        if wrapped >= 180.0 {
            -180.0
        } else {
            wrapped
        }
    } else {
        0.0
    }
}

/// Height and width of a geohash cell of `precision` characters, in degrees
/// of latitude and longitude.
fn cell_size_deg(precision: usize) -> (f64, f64) {
    let bits = 5 * precision.clamp(1, MAX_GEOHASH_LEN) as i32;
    let lat_bits = bits / 2;
    let lon_bits = bits - lat_bits;
    (180.0 / 2f64.powi(lat_bits), 360.0 / 2f64.powi(lon_bits))
}

/// `(height_km, width_km)` of a geohash cell of `precision` characters
/// (clamped to 1..=12) whose east-west extent is measured at latitude `lat`.
pub fn cell_size_km(precision: usize, lat: f64) -> (f64, f64) {
    let (dlat, dlon) = cell_size_deg(precision);
    let km_per_deg = EARTH_RADIUS_KM.to_radians();
    (
        dlat * km_per_deg,
        dlon * km_per_deg * lat.to_radians().cos().abs(),
    )
}

/// Checks a search radius: finite and within (0, [`MAX_RADIUS_KM`]].
fn check_radius(radius_km: f64) -> Result<(), GeoError> {
    if radius_km.is_finite() && radius_km > 0.0 && radius_km <= MAX_RADIUS_KM {
        Ok(())
    } else {
        Err(GeoError::BadRadius(radius_km))
    }
}

/// The geohash precision to search within `radius_km` of a point at latitude
/// `lat`: the highest precision (1..=[`MAX_SEARCH_PRECISION`]) whose cells
/// are at least `radius_km` high and wide, so that the 3x3 block of a cell
/// and its eight neighbours contains every point within `radius_km` of any
/// point of that cell. Returns 1 when no precision qualifies.
///
/// The width is checked conservatively: at the cell's poleward edge and
/// along great circles (which bend towards the pole), so the guarantee also
/// holds at high latitudes. It cannot hold when the radius reaches a pole.
///
/// The radius must be finite and within (0, [`MAX_RADIUS_KM`]], and `lat`
/// a valid latitude.
pub fn precision_for_radius(radius_km: f64, lat: f64) -> Result<usize, GeoError> {
    check_radius(radius_km)?;
    if !lat.is_finite() {
        return Err(GeoError::BadCoordinates(format!("{lat},0")));
    }
    if !(-90.0..=90.0).contains(&lat) {
        return Err(GeoError::OutOfRange { lat, lon: 0.0 });
    }
    // Angular radius, with a hair of slack against rounding.
    let d = radius_km / EARTH_RADIUS_KM * (1.0 + 1e-9);
    let fits = |precision: usize| {
        let (dlat, dlon) = cell_size_deg(precision);
        if dlat.to_radians() < d {
            return false;
        }
        // Any point of the cell is at most this far from the equator.
        let far_lat = (lat.abs() + dlat).min(90.0).to_radians();
        let ratio = d.sin() / far_lat.cos();
        // ratio >= 1: a pole is within reach, no longitude span suffices.
        ratio < 1.0 && dlon.to_radians() >= ratio.asin()
    };
    Ok((1..=MAX_SEARCH_PRECISION)
        .rev()
        .find(|&p| fits(p))
        .unwrap_or(1))
}

/// The geohash cells to watch for peers within `radius_km` of `pos`: the
/// own cell at [`precision_for_radius`] first, then its neighbours (north,
/// north-east, east, south-east, south, south-west, west, north-west),
/// without duplicates. Neighbours beyond a pole are left out.
pub fn covering_cells(pos: &Position, radius_km: f64) -> Result<Vec<String>, GeoError> {
    let pos = Position::new(pos.lat, pos.lon)?;
    let precision = precision_for_radius(radius_km, pos.lat)?;
    Ok(cell_and_neighbours(&pos.geohash(precision)))
}

/// Latitude at which location groups measure their cells: the precision of
/// a group depends on its radius only (see [`group_precision`]), so that
/// everyone who picks the same radius lands on cells of the same size.
pub const GROUP_REFERENCE_LAT: f64 = 60.0;

/// The geohash precision of a location group of `radius_km`, the same for
/// every user wherever they are: [`precision_for_radius`] at
/// [`GROUP_REFERENCE_LAT`], capped at [`WIRE_GEOHASH_PRECISION`] so that a
/// group's topic never reveals more than the coarse position sent with
/// each message.
///
/// This gives six bands (cell sizes are height x width at 45° latitude):
///
/// | radius up to | precision | cell             |
/// |--------------|-----------|------------------|
/// | 0.6 km       | 6         | 0.6 x 0.9 km     |
/// | 2.4 km       | 5         | 4.9 x 3.5 km     |
/// | 19.4 km      | 4         | 19.5 x 27.6 km   |
/// | 74.8 km      | 3         | 156 x 111 km     |
/// | 513 km       | 2         | 625 x 885 km     |
/// | 2500 km      | 1         | 5004 x 3538 km   |
///
/// Cells are at least `radius_km` high and wide up to 60° of latitude, so
/// there the 3x3 block of [`group_cells`] holds every point within the
/// radius; further towards the poles cells get narrower and a group may miss
/// people near the east and west edge of its radius.
pub fn group_precision(radius_km: f64) -> Result<usize, GeoError> {
    Ok(precision_for_radius(radius_km, GROUP_REFERENCE_LAT)?.min(WIRE_GEOHASH_PRECISION))
}

/// The cells of a location group of `radius_km` around `pos`: the own cell
/// at [`group_precision`] first, then its neighbours as in
/// [`covering_cells`].
pub fn group_cells(pos: &Position, radius_km: f64) -> Result<Vec<String>, GeoError> {
    let pos = Position::new(pos.lat, pos.lon)?;
    let precision = group_precision(radius_km)?;
    Ok(cell_and_neighbours(&pos.geohash(precision)))
}

/// `own` followed by its eight neighbours, without duplicates and without
/// neighbours beyond a pole.
fn cell_and_neighbours(own: &str) -> Vec<String> {
    let (touches_north, touches_south) = match geohash::decode_bbox(own) {
        Ok(rect) => (rect.max().y >= 90.0, rect.min().y <= -90.0),
        Err(_) => (false, false),
    };
    let mut cells = vec![own.to_string()];
    for dir in [
        Direction::N,
        Direction::NE,
        Direction::E,
        Direction::SE,
        Direction::S,
        Direction::SW,
        Direction::W,
        Direction::NW,
    ] {
        let (dlat, _) = dir.to_tuple();
        if (dlat > 0.0 && touches_north) || (dlat < 0.0 && touches_south) {
            continue;
        }
        if let Ok(cell) = geohash::neighbor(own, dir) {
            if !cells.contains(&cell) {
                cells.push(cell);
            }
        }
    }
    cells
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PARIS: Position = Position {
        lat: 48.8566,
        lon: 2.3522,
    };

    /// The point `dist_km` away from `from` along initial `bearing_deg`.
    fn destination(from: &Position, bearing_deg: f64, dist_km: f64) -> Position {
        let d = dist_km / EARTH_RADIUS_KM;
        let (phi1, lambda1) = (from.lat.to_radians(), from.lon.to_radians());
        let theta = bearing_deg.to_radians();
        let phi2 = (phi1.sin() * d.cos() + phi1.cos() * d.sin() * theta.cos()).asin();
        let lambda2 =
            lambda1 + (theta.sin() * d.sin() * phi1.cos()).atan2(d.cos() - phi1.sin() * phi2.sin());
        Position {
            lat: phi2.to_degrees(),
            lon: wrap_lon(lambda2.to_degrees()),
        }
    }

    fn mutually_covered(a: &Position, b: &Position, radius: f64) {
        let pa = precision_for_radius(radius, a.lat).unwrap();
        let pb = precision_for_radius(radius, b.lat).unwrap();
        let cells_a = covering_cells(a, radius).unwrap();
        let cells_b = covering_cells(b, radius).unwrap();
        assert_eq!(cells_a[0], a.geohash(pa));
        assert_eq!(cells_b[0], b.geohash(pb));
        assert!(cells_a.contains(&b.geohash(pa)), "{cells_a:?} {b}");
        assert!(cells_b.contains(&a.geohash(pb)), "{cells_b:?} {a}");
    }

    #[test]
    fn paris_and_a_point_three_km_east() {
        let other = Position::new(48.8566, 2.3931).unwrap();
        let d = PARIS.distance_km(&other);
        assert!((d - 3.0).abs() <= 0.2, "{d}");
        assert_eq!(precision_for_radius(10.0, PARIS.lat).unwrap(), 4);
        mutually_covered(&PARIS, &other, 10.0);
    }

    #[test]
    fn paris_lyon_distance() {
        let lyon = Position::new(45.7640, 4.8357).unwrap();
        let d = PARIS.distance_km(&lyon);
        assert!((d - 392.0).abs() <= 5.0, "{d}");
        assert!((lyon.distance_km(&PARIS) - d).abs() < 1e-9);
        assert_eq!(PARIS.distance_km(&PARIS), 0.0);
    }

    #[test]
    fn points_across_a_cell_border() {
        let radius = 5.0;
        let p = precision_for_radius(radius, PARIS.lat).unwrap();
        let rect = geohash::decode_bbox(&PARIS.geohash(p)).unwrap();
        let border_lon = rect.max().x;
        // 100 m either side of the eastern border, 200 m apart.
        let half = 0.1 / (EARTH_RADIUS_KM.to_radians() * PARIS.lat.to_radians().cos());
        let west = Position::new(PARIS.lat, border_lon - half).unwrap();
        let east = Position::new(PARIS.lat, border_lon + half).unwrap();
        assert!((west.distance_km(&east) - 0.2).abs() < 0.001);
        assert_ne!(west.geohash(p), east.geohash(p));
        mutually_covered(&west, &east, radius);

        // The same across the northern border.
        let border_lat = rect.max().y;
        let half = 0.1 / EARTH_RADIUS_KM.to_radians();
        let south = Position::new(border_lat - half, PARIS.lon).unwrap();
        let north = Position::new(border_lat + half, PARIS.lon).unwrap();
        assert_ne!(south.geohash(p), north.geohash(p));
        mutually_covered(&south, &north, radius);
    }

    #[test]
    fn precision_grows_as_radius_shrinks() {
        let radii = [
            2500.0, 1000.0, 300.0, 100.0, 30.0, 10.0, 3.0, 1.0, 0.3, 0.1, 0.01, 0.001,
        ];
        let precisions: Vec<usize> = radii
            .iter()
            .map(|&r| precision_for_radius(r, PARIS.lat).unwrap())
            .collect();
        assert!(
            precisions.windows(2).all(|w| w[0] <= w[1]),
            "{precisions:?}"
        );
        assert_eq!(precisions[0], 1);
        assert_eq!(*precisions.last().unwrap(), MAX_SEARCH_PRECISION);
        for (&r, &p) in radii.iter().zip(&precisions) {
            let (h, w) = cell_size_km(p, PARIS.lat);
            if p > 1 {
                assert!(h >= r && w >= r, "r={r} p={p} h={h} w={w}");
            }
            if p < MAX_SEARCH_PRECISION {
                let (h, w) = cell_size_km(p + 1, PARIS.lat);
                assert!(h < r * 1.5 || w < r * 1.5, "r={r} p={p}: p+1 would fit too");
            }
        }
    }

    #[test]
    fn cell_sizes() {
        let (h, w) = cell_size_km(6, 0.0);
        assert!(
            (h - 0.61).abs() < 0.01 && (w - 1.22).abs() < 0.01,
            "{h} {w}"
        );
        let (h1, w1) = cell_size_km(1, 0.0);
        assert!((h1 - 5003.8).abs() < 1.0 && (w1 - 5003.8).abs() < 1.0);
        let (_, w60) = cell_size_km(6, 60.0);
        assert!((w60 - 0.611).abs() < 0.01);
        assert_eq!(cell_size_km(0, 0.0), cell_size_km(1, 0.0));
        assert_eq!(cell_size_km(99, 0.0), cell_size_km(12, 0.0));
    }

    #[test]
    fn parse_positions() {
        assert_eq!(Position::parse("48.8566,2.3522").unwrap(), PARIS);
        assert_eq!(Position::parse(" 48.8566 , 2.3522 ").unwrap(), PARIS);
        assert_eq!(
            Position::parse("-90,180").unwrap(),
            Position {
                lat: -90.0,
                lon: 180.0
            }
        );
        let centre = Position::parse("u09tvw").unwrap();
        assert_eq!(centre.geohash(6), "u09tvw");
        assert_eq!(Position::parse("U09TVW").unwrap(), centre);
        assert_eq!(Position::from_geohash("u09tvw").unwrap(), centre);
        assert!(PARIS.distance_km(&centre) < 1.0);
        assert_eq!(PARIS.to_string(), "48.85660,2.35220");
        assert_eq!(Position::parse(&PARIS.to_string()).unwrap(), PARIS);
    }

    #[test]
    fn bad_positions() {
        assert_eq!(
            Position::parse("91,0"),
            Err(GeoError::OutOfRange {
                lat: 91.0,
                lon: 0.0
            })
        );
        assert_eq!(
            Position::parse("0,-180.5"),
            Err(GeoError::OutOfRange {
                lat: 0.0,
                lon: -180.5
            })
        );
        assert!(matches!(
            Position::parse("abc,def"),
            Err(GeoError::BadCoordinates(_))
        ));
        assert!(matches!(
            Position::parse("1,2,3"),
            Err(GeoError::BadCoordinates(_))
        ));
        assert!(matches!(
            Position::parse(","),
            Err(GeoError::BadCoordinates(_))
        ));
        assert!(matches!(
            Position::parse(""),
            Err(GeoError::BadCoordinates(_))
        ));
        assert!(matches!(
            Position::parse("NaN,0"),
            Err(GeoError::BadCoordinates(_))
        ));
        assert!(matches!(
            Position::parse("0,inf"),
            Err(GeoError::BadCoordinates(_))
        ));
        assert!(matches!(
            Position::new(f64::NAN, 0.0),
            Err(GeoError::BadCoordinates(_))
        ));
        assert_eq!(Position::parse("a"), Err(GeoError::BadGeohash("a".into())));
        assert_eq!(
            Position::from_geohash(""),
            Err(GeoError::BadGeohash(String::new()))
        );
        assert!(matches!(
            Position::from_geohash("u09tvu09tvu09"),
            Err(GeoError::BadGeohash(_))
        ));
    }

    #[test]
    fn bad_radii() {
        for r in [0.0, -1.0, 3000.0, f64::NAN, f64::INFINITY, -0.0] {
            assert!(
                matches!(precision_for_radius(r, 0.0), Err(GeoError::BadRadius(_))),
                "{r}"
            );
            assert!(
                matches!(covering_cells(&PARIS, r), Err(GeoError::BadRadius(_))),
                "{r}"
            );
        }
        assert_eq!(precision_for_radius(MAX_RADIUS_KM, 0.0).unwrap(), 1);
        assert!(matches!(
            precision_for_radius(1.0, 91.0),
            Err(GeoError::OutOfRange { .. })
        ));
        assert!(matches!(
            precision_for_radius(1.0, f64::NAN),
            Err(GeoError::BadCoordinates(_))
        ));
        let bad = Position {
            lat: 100.0,
            lon: 0.0,
        };
        assert!(matches!(
            covering_cells(&bad, 1.0),
            Err(GeoError::OutOfRange { .. })
        ));
    }

    #[test]
    fn covering_cells_shape() {
        let cells = covering_cells(&PARIS, 10.0).unwrap();
        assert_eq!(cells.len(), 9);
        assert!(cells.iter().all(|c| c.len() == 4 && is_geohash(c)));
        // Poles and the antimeridian: no panic, no duplicates, own cell first.
        for pos in [
            Position {
                lat: 90.0,
                lon: 0.0,
            },
            Position {
                lat: -90.0,
                lon: 180.0,
            },
            Position {
                lat: 0.0,
                lon: 180.0,
            },
            Position {
                lat: 0.0,
                lon: -180.0,
            },
            Position {
                lat: 89.99,
                lon: 179.99,
            },
        ] {
            for r in [0.001, 1.0, 100.0, 2500.0] {
                let cells = covering_cells(&pos, r).unwrap();
                let p = precision_for_radius(r, pos.lat).unwrap();
                assert_eq!(cells[0], pos.geohash(p));
                let mut dedup = cells.clone();
                dedup.sort();
                dedup.dedup();
                assert_eq!(dedup.len(), cells.len());
            }
        }
        // Across the antimeridian.
        let west = Position {
            lat: 10.0,
            lon: 179.999,
        };
        let east = Position {
            lat: 10.0,
            lon: -179.999,
        };
        mutually_covered(&west, &east, 1.0);
    }

    #[test]
    fn north_pole_stays_north() {
        let pole = Position {
            lat: 90.0,
            lon: 0.0,
        };
        assert!(Position::from_geohash(&pole.geohash(5)).unwrap().lat > 89.0);
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            GeoError::BadRadius(0.0).to_string(),
            "bad radius 0 km: use a number greater than 0 and at most 2500"
        );
        for e in [
            GeoError::BadCoordinates("x\ny".into()),
            GeoError::OutOfRange {
                lat: 91.0,
                lon: 0.0,
            },
            GeoError::BadGeohash("a".into()),
        ] {
            assert!(!e.to_string().contains('\n'));
        }
    }

    #[test]
    fn group_bands_depend_on_the_radius_only() {
        for (radius, precision) in [
            (0.01, 6),
            (0.6, 6),
            (0.62, 5),
            (2.4, 5),
            (2.5, 4),
            (10.0, 4),
            (19.4, 4),
            (19.5, 3),
            (74.8, 3),
            (75.0, 2),
            (513.0, 2),
            (514.0, 1),
            (MAX_RADIUS_KM, 1),
        ] {
            assert_eq!(group_precision(radius).unwrap(), precision, "{radius} km");
        }
        assert!(matches!(group_precision(0.0), Err(GeoError::BadRadius(_))));
        // Paris and Lyon pick the same cell size for the same radius.
        let lyon = Position::new(45.7640, 4.8357).unwrap();
        let cells_paris = group_cells(&PARIS, 10.0).unwrap();
        let cells_lyon = group_cells(&lyon, 10.0).unwrap();
        assert_eq!(cells_paris[0], "u09t");
        assert_eq!(cells_paris[0].len(), cells_lyon[0].len());
        assert!(!cells_paris.contains(&cells_lyon[0]));
        assert_eq!(cells_paris.len(), 9);
    }

    #[test]
    fn group_cells_cover_a_pair_across_a_border() {
        let radius = 10.0;
        let p = group_precision(radius).unwrap();
        let rect = geohash::decode_bbox(&PARIS.geohash(p)).unwrap();
        let half = 0.1 / (EARTH_RADIUS_KM.to_radians() * PARIS.lat.to_radians().cos());
        let west = Position::new(PARIS.lat, rect.max().x - half).unwrap();
        let east = Position::new(PARIS.lat, rect.max().x + half).unwrap();
        assert_ne!(west.geohash(p), east.geohash(p));
        assert!(group_cells(&west, radius)
            .unwrap()
            .contains(&east.geohash(p)));
        assert!(group_cells(&east, radius)
            .unwrap()
            .contains(&west.geohash(p)));
    }

    proptest! {
        #[test]
        fn points_within_radius_are_covered(
            lat in -80.0f64..80.0,
            lon in -180.0f64..180.0,
            radius in 0.5f64..500.0,
            bearing in 0.0f64..360.0,
            frac in 0.0f64..1.0,
        ) {
            let a = Position::new(lat, lon).unwrap();
            let b = destination(&a, bearing, radius * frac * 0.999);
            prop_assume!(b.lat.abs() <= 80.0);
            prop_assert!(a.distance_km(&b) < radius);
            let p = precision_for_radius(radius, a.lat).unwrap();
            let cells = covering_cells(&a, radius).unwrap();
            prop_assert!(cells.contains(&b.geohash(p)), "{} {} r={} p={} {:?}", a, b, radius, p, cells);
        }

        #[test]
        fn group_cells_cover_the_radius_up_to_60_degrees(
            lat in -59.0f64..59.0,
            lon in -180.0f64..180.0,
            radius in 0.01f64..2500.0,
            bearing in 0.0f64..360.0,
            frac in 0.0f64..1.0,
        ) {
            let a = Position::new(lat, lon).unwrap();
            let b = destination(&a, bearing, radius * frac * 0.999);
            prop_assume!(b.lat.abs() <= 59.0);
            let p = group_precision(radius).unwrap();
            let cells = group_cells(&a, radius).unwrap();
            prop_assert!(cells.contains(&b.geohash(p)), "{} {} r={} p={} {:?}", a, b, radius, p, cells);
        }

        #[test]
        fn geohash_round_trip(lat in -90.0f64..=90.0, lon in -180.0f64..=180.0, p in 1usize..=12) {
            let pos = Position::new(lat, lon).unwrap();
            let hash = pos.geohash(p);
            prop_assert!(is_geohash(&hash) && hash.len() == p);
            let centre = Position::from_geohash(&hash).unwrap();
            prop_assert_eq!(centre.geohash(p), hash);
        }

        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = Position::parse(&s);
        }

        #[test]
        fn display_parse_round_trip(lat in -90.0f64..=90.0, lon in -180.0f64..=180.0) {
            let pos = Position::new(lat, lon).unwrap();
            let back = Position::parse(&pos.to_string()).unwrap();
            prop_assert!((back.lat - lat).abs() <= 5e-6 && (back.lon - lon).abs() <= 5e-6);
        }
    }
}
