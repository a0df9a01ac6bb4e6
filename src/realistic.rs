//! Contact rows as people really export them from a CRM or a spreadsheet,
//! for the pipeline benchmark and the tests that hold the fast paths to
//! their references: most numbers written nationally, the rest in every
//! international form; four countries and rows relying on the job's
//! default; names in several scripts with quoted commas, doubled quotes
//! and a line break; about 2% invalid and 2% repeated rows (most repeats
//! written in another format than their first row). The same `rows(n)`
//! always gives the same rows.

/// One contact row, its cells already written as CSV (quoted where needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub name: &'static str,
    pub phone: String,
    /// Empty for the rows that rely on the job's default country (HK).
    pub country: &'static str,
}

/// The job's default country for these rows.
pub const DEFAULT_COUNTRY: &str = "HK";

/// The first `rows` rows.
pub fn rows(rows: usize) -> impl Iterator<Item = Row> {
    (0..rows).map(row)
}

const NAMES: [&str; 12] = [
    "陳大文",
    "\"Lee, Ann\"",
    "José Álvarez",
    "\"Bob \"\"The Builder\"\" Smith\"",
    "Siti Nurhaliza",
    "Иван Петров",
    "محمد علي",
    "\"Tan Ah Kow\nc/o Mdm Lim\"",
    "Łukasz Kowalski",
    "田中 太郎",
    "김민준",
    "Nguyễn Văn An",
];

fn row(i: usize) -> Row {
    let (phone, country) = if i % 50 == 7 {
        // About 2% invalid, as people type them.
        (
            ["n/a", "12-345", "+999 1234", "tel: ask", ""][i / 50 % 5].to_owned(),
            "",
        )
    } else if i % 50 == 21 && i >= 100 {
        // About 2% repeat an earlier row's number, most in another format.
        let (digits, country) = number(i - 97);
        (written(&digits, country, i + 1), country)
    } else {
        let (digits, country) = number(i);
        (written(&digits, country, i), country)
    };
    let country = if i.is_multiple_of(7) && country == DEFAULT_COUNTRY {
        ""
    } else {
        country
    };
    Row {
        name: NAMES[i % NAMES.len()],
        phone,
        country,
    }
}

/// A valid national number for row `i` and its country (HK, SG, GB, US),
/// different for every `i`, digits only, without the country code.
fn number(i: usize) -> (String, &'static str) {
    let group = (i / 4) as u64;
    let scramble = |range: u64| group.wrapping_mul(48_271) % range;
    match i % 4 {
        0 => {
            let v = scramble(4_500_000);
            let prefix = ["51", "52", "53", "54", "59"][(v % 5) as usize];
            let third = ['0', '1', '2', '3', '4', '6', '7', '8', '9'][((v / 5) % 9) as usize];
            (format!("{prefix}{third}{:05}", v / 45), "HK")
        }
        1 => (format!("9{:07}", scramble(9_000_000)), "SG"),
        2 => (format!("71{:08}", scramble(100_000_000)), "GB"),
        _ => (format!("212{:07}", 2_000_000 + scramble(8_000_000)), "US"),
    }
}

/// A number as people write it: `style` picks national forms (more than
/// half, with the country's trunk prefix and separators) or one of the
/// international ones.
fn written(national: &str, country: &str, style: usize) -> String {
    let code = match country {
        "HK" => "852",
        "SG" => "65",
        "GB" => "44",
        _ => "1",
    };
    let n = national;
    match style % 10 {
        // National.
        0..=5 => match (country, style % 3) {
            ("GB", 0) => format!("0{} {} {}", &n[..4], &n[4..7], &n[7..]),
            ("GB", 1) => format!("(0{}) {}", &n[..4], &n[4..]),
            ("GB", _) => format!("0{}-{}", &n[..4], &n[4..]),
            ("US", 0) => format!("({}) {}-{}", &n[..3], &n[3..6], &n[6..]),
            ("US", 1) => format!("1 {}-{}-{}", &n[..3], &n[3..6], &n[6..]),
            ("US", _) => format!("{}.{}.{}", &n[..3], &n[3..6], &n[6..]),
            (_, 0) => format!("{} {}", &n[..4], &n[4..]),
            (_, 1) => format!("{}-{}", &n[..4], &n[4..]),
            (_, _) => n.to_owned(),
        },
        // International, every way.
        6 => format!("+{code} {n}"),
        7 => format!("00{code}{n}"),
        8 => format!("{code}{n}"),
        _ => format!("+{code}-{}-{}", &n[..4], &n[4..]),
    }
}
