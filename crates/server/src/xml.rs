//! A minimal XML writer for AWS query-protocol responses (sts-iam.md §1.3): elements and
//! escaped text, nothing else.

/// Builds an XML document into a string.
#[derive(Debug, Default)]
pub struct Xml {
    out: String,
}

impl Xml {
    /// An empty document with the XML declaration AWS sends.
    pub fn new() -> Self {
        Self {
            out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
        }
    }

    /// An empty fragment (no declaration), for the inside of a result element.
    /// Like [`Xml::new`], with room for `capacity` bytes, so that a document of about
    /// that size is written without regrowing.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut x = Self {
            out: String::with_capacity(capacity),
        };
        x.out
            .push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        x
    }

    pub fn fragment() -> Self {
        Self::default()
    }

    /// Appends an already-built fragment.
    pub fn raw(&mut self, fragment: &str) {
        self.out.push_str(fragment);
    }

    /// `<name xmlns="ns">`, then `body`, then `</name>`.
    pub fn root(&mut self, name: &str, namespace: &str, body: impl FnOnce(&mut Self)) {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push_str(" xmlns=\"");
        escape_into(&mut self.out, namespace);
        self.out.push_str("\">");
        body(self);
        self.close(name);
    }

    /// `<name>` … `</name>` around whatever `body` writes.
    pub fn elem(&mut self, name: &str, body: impl FnOnce(&mut Self)) {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        body(self);
        self.close(name);
    }

    /// `<name>text</name>`, text escaped.
    pub fn text(&mut self, name: &str, text: &str) {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        escape_into(&mut self.out, text);
        self.close(name);
    }

    /// `text`, escaped, with no element around it (the bare string members of a list).
    pub fn escaped(&mut self, text: &str) {
        escape_into(&mut self.out, text);
    }

    /// `text` when `Some`.
    pub fn opt_text(&mut self, name: &str, text: Option<&str>) {
        if let Some(t) = text {
            self.text(name, t);
        }
    }

    fn close(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    /// The document.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Appends `text` with XML's five special characters escaped. Runs of plain text are
/// copied whole: a session token is ~1 KB of base64url with nothing to escape.
fn escape_into(out: &mut String, text: &str) {
    let mut rest = text;
    while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
        let (plain, special) = rest.split_at(i);
        out.push_str(plain);
        let mut chars = special.chars();
        out.push_str(match chars.next() {
            Some('&') => "&amp;",
            Some('<') => "&lt;",
            Some('>') => "&gt;",
            Some('"') => "&quot;",
            _ => "&apos;",
        });
        rest = chars.as_str();
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_special_character_wherever_it_is() {
        let cases = [
            ("", ""),
            ("plain", "plain"),
            ("&", "&amp;"),
            ("a<b>c", "a&lt;b&gt;c"),
            ("\"'", "&quot;&apos;"),
            ("é&ü<", "é&amp;ü&lt;"),
            ("&&", "&amp;&amp;"),
            ("x'", "x&apos;"),
        ];
        for (text, escaped) in cases {
            let mut out = String::from(">");
            escape_into(&mut out, text);
            assert_eq!(out, format!(">{escaped}"), "{text:?}");
        }
    }

    #[test]
    fn escapes_and_nests() {
        let mut x = Xml::new();
        x.root("R", "urn:x", |x| {
            x.elem("A", |x| x.text("B", "<&'\">"));
            x.opt_text("C", None);
        });
        assert!(
            x.finish()
                .ends_with(r#"<R xmlns="urn:x"><A><B>&lt;&amp;&apos;&quot;&gt;</B></A></R>"#)
        );
    }
}
