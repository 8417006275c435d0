//! Reading the XML the emulated services exchange (moto's SQS answers, S3
//! request bodies) into a tree of elements, with quick-xml: entities,
//! character references and CDATA are resolved as XML defines them.

use quick_xml::Reader;
use quick_xml::events::Event;

/// An element: its local name (no namespace prefix), its child elements in
/// order, and its text (entities and character references resolved, CDATA
/// as is).
#[derive(Debug, Default)]
pub struct Element {
    pub name: String,
    pub children: Vec<Element>,
    pub text: String,
}

/// The document's root element.
pub fn parse(xml: &str) -> Result<Element, String> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    loop {
        match reader.read_event().map_err(|e| format!("invalid XML: {e}"))? {
            Event::Start(e) => stack.push(Element {
                name: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
                ..Default::default()
            }),
            Event::Empty(e) => {
                let el = Element {
                    name: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
                    ..Default::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => return Ok(el),
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or("unbalanced XML")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => return Ok(el),
                }
            }
            Event::Text(t) => {
                if let Some(cur) = stack.last_mut() {
                    let s = t.xml10_content().map_err(|e| format!("invalid XML text: {e}"))?;
                    cur.text.push_str(&s);
                }
            }
            Event::GeneralRef(r) => {
                if let Some(cur) = stack.last_mut() {
                    // Character references (&#38; &#x26;) and the five predefined
                    // entities, resolved by quick-xml; anything else stays as written.
                    let name = r.decode().map_err(|e| format!("invalid XML reference: {e}"))?;
                    match r.resolve_char_ref().map_err(|e| format!("invalid XML character reference: {e}"))? {
                        Some(c) => cur.text.push(c),
                        None => match quick_xml::escape::resolve_predefined_entity(&name) {
                            Some(text) => cur.text.push_str(text),
                            None => cur.text.push_str(&format!("&{name};")),
                        },
                    }
                }
            }
            Event::CData(t) => {
                if let Some(cur) = stack.last_mut() {
                    cur.text.push_str(&String::from_utf8_lossy(t.as_ref()));
                }
            }
            Event::Eof => return Err("empty or truncated XML".into()),
            _ => {}
        }
    }
}

/// The text of `el`'s first child element named `name`.
pub fn child_text<'a>(el: &'a Element, name: &str) -> Option<&'a str> {
    el.children.iter().find(|c| c.name == name).map(|c| c.text.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_resolves_entities_character_references_and_cdata() {
        let root = parse("<a><k>x&amp;&#60;y&#x3E;</k><k><![CDATA[<Key>z</Key>]]></k></a>").unwrap();
        let texts: Vec<&str> = root.children.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["x&<y>", "<Key>z</Key>"]);
        assert_eq!(child_text(&root, "k"), Some("x&<y>"));
    }

    #[test]
    fn broken_documents_are_errors() {
        assert!(parse("<a><b></a>").is_err());
        assert!(parse("<a>").is_err());
        assert!(parse("").is_err());
    }
}
