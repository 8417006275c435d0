//! The batch simulator's output: plausible weather observations.
//!
//! Each record is drawn around a real station's climate so values hang
//! together: snow only near freezing, rain with high humidity and falling
//! pressure, local time in the station's own offset.

use rand::Rng;
use rand::seq::IndexedRandom;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime, UtcOffset};

/// Records per job, as in the Python reference (`range(1, 100)`).
pub const RECORDS_PER_JOB: usize = 99;

/// The object written to the results bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeatherReport {
    pub weather_data: Vec<Observation>,
}

/// One observation. Units: temperature °C, pressure hPa, humidity %.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    pub station: String,
    /// `"<latitude>,<longitude>"` in decimal degrees.
    pub geo_location: String,
    /// RFC 3339 with the station's UTC offset.
    pub local_time: String,
    pub conditions: String,
    pub temperature: f64,
    pub pressure: f64,
    pub humidity: f64,
}

struct Station {
    name: &'static str,
    lat: f64,
    lon: f64,
    utc_offset_hours: i8,
    /// Typical air temperature and its spread, °C.
    mean_temp: f64,
    temp_spread: f64,
    /// How often it is wet there, 0..1.
    wetness: f64,
}

const STATIONS: &[Station] = &[
    Station {
        name: "Seattle-Tacoma Intl (KSEA)",
        lat: 47.4502,
        lon: -122.3088,
        utc_offset_hours: -8,
        mean_temp: 11.5,
        temp_spread: 6.0,
        wetness: 0.45,
    },
    Station {
        name: "Chicago O'Hare Intl (KORD)",
        lat: 41.9786,
        lon: -87.9048,
        utc_offset_hours: -6,
        mean_temp: 10.0,
        temp_spread: 11.0,
        wetness: 0.30,
    },
    Station {
        name: "New York Central Park (KNYC)",
        lat: 40.7789,
        lon: -73.9692,
        utc_offset_hours: -5,
        mean_temp: 13.0,
        temp_spread: 9.0,
        wetness: 0.30,
    },
    Station {
        name: "Phoenix Sky Harbor (KPHX)",
        lat: 33.4343,
        lon: -112.0116,
        utc_offset_hours: -7,
        mean_temp: 24.0,
        temp_spread: 8.0,
        wetness: 0.05,
    },
    Station {
        name: "Miami Intl (KMIA)",
        lat: 25.7959,
        lon: -80.2870,
        utc_offset_hours: -5,
        mean_temp: 25.5,
        temp_spread: 3.5,
        wetness: 0.40,
    },
    Station {
        name: "Denver Intl (KDEN)",
        lat: 39.8561,
        lon: -104.6737,
        utc_offset_hours: -7,
        mean_temp: 10.5,
        temp_spread: 10.0,
        wetness: 0.20,
    },
    Station {
        name: "London Heathrow (EGLL)",
        lat: 51.4700,
        lon: -0.4543,
        utc_offset_hours: 0,
        mean_temp: 11.5,
        temp_spread: 5.5,
        wetness: 0.45,
    },
    Station {
        name: "Oslo Gardermoen (ENGM)",
        lat: 60.1939,
        lon: 11.1004,
        utc_offset_hours: 1,
        mean_temp: 4.5,
        temp_spread: 9.0,
        wetness: 0.40,
    },
    Station {
        name: "Frankfurt am Main (EDDF)",
        lat: 50.0379,
        lon: 8.5622,
        utc_offset_hours: 1,
        mean_temp: 10.5,
        temp_spread: 7.5,
        wetness: 0.35,
    },
    Station {
        name: "Cairo Intl (HECA)",
        lat: 30.1219,
        lon: 31.4056,
        utc_offset_hours: 2,
        mean_temp: 22.5,
        temp_spread: 6.0,
        wetness: 0.03,
    },
    Station {
        name: "Mumbai Chhatrapati Shivaji (VABB)",
        lat: 19.0896,
        lon: 72.8656,
        utc_offset_hours: 5,
        mean_temp: 27.5,
        temp_spread: 2.5,
        wetness: 0.35,
    },
    Station {
        name: "Singapore Changi (WSSS)",
        lat: 1.3644,
        lon: 103.9915,
        utc_offset_hours: 8,
        mean_temp: 27.5,
        temp_spread: 1.5,
        wetness: 0.55,
    },
    Station {
        name: "Tokyo Haneda (RJTT)",
        lat: 35.5494,
        lon: 139.7798,
        utc_offset_hours: 9,
        mean_temp: 16.5,
        temp_spread: 7.5,
        wetness: 0.35,
    },
    Station {
        name: "Sydney Kingsford Smith (YSSY)",
        lat: -33.9399,
        lon: 151.1753,
        utc_offset_hours: 10,
        mean_temp: 18.5,
        temp_spread: 4.5,
        wetness: 0.30,
    },
    Station {
        name: "Anchorage Ted Stevens (PANC)",
        lat: 61.1744,
        lon: -149.9964,
        utc_offset_hours: -9,
        mean_temp: 2.5,
        temp_spread: 9.5,
        wetness: 0.35,
    },
    Station {
        name: "Reykjavik (BIRK)",
        lat: 64.1300,
        lon: -21.9406,
        utc_offset_hours: 0,
        mean_temp: 5.0,
        temp_spread: 5.0,
        wetness: 0.55,
    },
];

/// Generate a job's report: `RECORDS_PER_JOB` observations from the last day.
pub fn generate_report<R: Rng + ?Sized>(rng: &mut R, now: OffsetDateTime) -> WeatherReport {
    let weather_data = (0..RECORDS_PER_JOB).map(|_| observe(rng, now)).collect();
    WeatherReport { weather_data }
}

fn observe<R: Rng + ?Sized>(rng: &mut R, now: OffsetDateTime) -> Observation {
    let station = STATIONS.choose(rng).unwrap_or(&STATIONS[0]);
    // A sum of uniforms approximates a bell curve without another dependency.
    let bell = |rng: &mut R| (0..4).map(|_| rng.random_range(-1.0..1.0)).sum::<f64>() / 2.0;
    let temperature = round1(station.mean_temp + bell(rng) * station.temp_spread);
    let wet = rng.random_bool(station.wetness);
    let conditions = if wet {
        if temperature <= 1.0 {
            *["Snow", "Light Snow", "Sleet"].choose(rng).unwrap_or(&"Snow")
        } else if temperature >= 20.0 && rng.random_bool(0.25) {
            "Thunderstorm"
        } else {
            *["Light Rain", "Rain", "Drizzle", "Fog"].choose(rng).unwrap_or(&"Rain")
        }
    } else {
        *["Clear", "Mostly Clear", "Partly Cloudy", "Overcast", "Windy"].choose(rng).unwrap_or(&"Clear")
    };
    let humidity = if wet {
        rng.random_range(78.0..100.0)
    } else if station.wetness < 0.1 {
        rng.random_range(8.0..35.0)
    } else {
        rng.random_range(35.0..75.0)
    };
    let pressure = 1013.25 + bell(rng) * 9.0 - if wet { rng.random_range(3.0..14.0) } else { 0.0 };
    let offset = UtcOffset::from_hms(station.utc_offset_hours, 0, 0).unwrap_or(UtcOffset::UTC);
    let observed = (now - Duration::minutes(rng.random_range(0..24 * 60)))
        .to_offset(offset)
        .replace_second(0)
        .and_then(|t| t.replace_nanosecond(0))
        .unwrap_or(now);
    Observation {
        station: station.name.to_owned(),
        geo_location: format!("{:.4},{:.4}", station.lat, station.lon),
        local_time: observed.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        conditions: conditions.to_owned(),
        temperature,
        pressure: round1(pressure),
        humidity: round1(humidity),
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn report(seed: u64) -> WeatherReport {
        let now = OffsetDateTime::from_unix_timestamp(1_795_000_000).unwrap();
        generate_report(&mut StdRng::seed_from_u64(seed), now)
    }

    #[test]
    fn a_report_has_99_records_with_every_field() {
        let json = serde_json::to_value(report(1)).unwrap();
        let records = json["weatherData"].as_array().unwrap();
        assert_eq!(records.len(), 99);
        for r in records {
            for key in ["station", "geoLocation", "localTime", "conditions", "temperature", "pressure", "humidity"] {
                assert!(r.get(key).is_some(), "missing {key} in {r}");
            }
        }
    }

    #[test]
    fn values_are_physically_plausible_and_consistent() {
        for seed in 0..50 {
            for o in report(seed).weather_data {
                assert!((-60.0..=60.0).contains(&o.temperature), "{o:?}");
                assert!((940.0..=1060.0).contains(&o.pressure), "{o:?}");
                assert!((0.0..=100.0).contains(&o.humidity), "{o:?}");
                if o.conditions.contains("Snow") || o.conditions == "Sleet" {
                    assert!(o.temperature <= 1.0, "snow at {o:?}");
                }
                if ["Rain", "Light Rain", "Drizzle", "Fog", "Thunderstorm"].contains(&o.conditions.as_str()) {
                    assert!(o.humidity >= 78.0, "dry rain {o:?}");
                }
                let (lat, lon) = o.geo_location.split_once(',').unwrap();
                assert!((-90.0..=90.0).contains(&lat.parse::<f64>().unwrap()));
                assert!((-180.0..=180.0).contains(&lon.parse::<f64>().unwrap()));
                OffsetDateTime::parse(&o.local_time, &time::format_description::well_known::Rfc3339).unwrap();
            }
        }
    }

    #[test]
    fn draws_vary_between_jobs() {
        assert_ne!(report(1), report(2));
        let stations: std::collections::HashSet<_> = report(3).weather_data.into_iter().map(|o| o.station).collect();
        assert!(stations.len() > 5, "{stations:?}");
    }
}
