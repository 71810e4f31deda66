//! Plain-text tables for people: columns padded to their widest cell, two spaces apart, no
//! trailing blanks; and `label  value` lists for one object.

/// Shown for a value that is not set.
pub const NONE: &str = "-";

pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<I, S>(headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|cell| width(cell)).collect();
        for row in &self.rows {
            for (column, cell) in row.iter().enumerate() {
                match widths.get_mut(column) {
                    Some(widest) => *widest = (*widest).max(width(cell)),
                    None => widths.push(width(cell)),
                }
            }
        }
        let mut text = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::new();
            for (column, cell) in row.iter().enumerate() {
                if column > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                let pad = widths
                    .get(column)
                    .copied()
                    .unwrap_or(0)
                    .saturating_sub(width(cell));
                line.extend(std::iter::repeat_n(' ', pad));
            }
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }
}

/// `label  value` lines, the values aligned.
pub fn fields(fields: &[(&str, String)]) -> String {
    let widest = fields
        .iter()
        .map(|(label, _)| width(label))
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    for (label, value) in fields {
        let pad = widest.saturating_sub(width(label)).saturating_add(2);
        let line = format!("{label}{}{value}", " ".repeat(pad));
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// Width on a terminal, counted in characters (names are ASCII; this keeps others aligned
/// well enough).
fn width(text: &str) -> usize {
    text.chars().count()
}

/// `value` or `-`.
pub fn or_none<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| NONE.to_owned(), |value| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::{Table, fields, or_none};

    #[test]
    fn columns_are_aligned_without_trailing_blanks() {
        let mut table = Table::new(["ID", "TENANT", "NAME"]);
        table.row(["key_1", "acme", "-"]);
        table.row(["key_22", "a", "ci-bot"]);
        assert_eq!(
            table.render(),
            "ID      TENANT  NAME\nkey_1   acme    -\nkey_22  a       ci-bot\n"
        );
        assert_eq!(Table::new(["A", "B"]).render(), "A  B\n");
    }

    #[test]
    fn fields_align_their_values() {
        assert_eq!(
            fields(&[
                ("id", "key_1".into()),
                ("tenant", "acme".into()),
                ("name", String::new())
            ]),
            "id      key_1\ntenant  acme\nname\n"
        );
        assert_eq!(or_none(Some(3)), "3");
        assert_eq!(or_none(None::<u8>), "-");
    }
}
