//! The SQS service integration: moto answers the Query protocol in XML;
//! API Gateway receives JSON from SQS. This converts one into the other.

use serde_json::{Map, Value, json};

use crate::xml::{Element, child_text, parse};

fn to_json(el: &Element) -> Value {
    if el.children.is_empty() {
        return if el.text.is_empty() { Value::Null } else { Value::String(el.text.clone()) };
    }
    let mut map = Map::new();
    for child in &el.children {
        let v = to_json(child);
        let repeated = el.children.iter().filter(|c| c.name == child.name).count() > 1;
        if repeated {
            match map.entry(child.name.clone()).or_insert_with(|| Value::Array(Vec::new())) {
                Value::Array(a) => a.push(v),
                _ => unreachable!("repeated elements are collected into arrays"),
            }
        } else {
            map.insert(child.name.clone(), v);
        }
    }
    Value::Object(map)
}

/// Converts moto's XML answer into the JSON API Gateway gets from SQS:
/// `{"SendMessageResponse": {"ResponseMetadata": {...}, "SendMessageResult": {...}}}`
/// or, for errors, `{"Error": {"Code", "Message", "Type"}, "RequestId"}`.
pub fn xml_to_json(xml: &str) -> Result<Value, String> {
    let root = parse(xml.trim())?;
    if root.name == "ErrorResponse" {
        let error = root.children.iter().find(|c| c.name == "Error");
        let field = |n: &str| error.and_then(|e| child_text(e, n)).map(|s| json!(s)).unwrap_or(Value::Null);
        return Ok(json!({
            "Error": {"Code": field("Code"), "Message": field("Message"), "Type": field("Type")},
            "RequestId": child_text(&root, "RequestId").map(|s| json!(s)).unwrap_or(Value::Null),
        }));
    }
    let mut body = to_json(&root);
    if root.name == "SendMessageResponse"
        && let Some(result) = body.get_mut("SendMessageResult").and_then(Value::as_object_mut)
    {
        for key in [
            "MD5OfMessageAttributes",
            "MD5OfMessageBody",
            "MD5OfMessageSystemAttributes",
            "MessageId",
            "SequenceNumber",
        ] {
            result.entry(key).or_insert(Value::Null);
        }
    }
    Ok(json!({ root.name.clone(): body }))
}

/// The size SQS counts for a SendMessage request (Query protocol, form
/// encoded): the body's bytes plus, for every message attribute, the bytes of
/// its name, data type and value ("All parts of the message attribute,
/// including Name, Type, and Value, are part of the message size
/// restriction":
/// https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_MessageAttributeValue.html).
/// `None` for another action.
pub fn send_message_size(form: &[u8]) -> Option<usize> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(form).into_owned().collect();
    if !pairs.iter().any(|(k, v)| k == "Action" && v == "SendMessage") {
        return None;
    }
    let counted = |k: &str| {
        k == "MessageBody"
            || (k.starts_with("MessageAttribute.")
                && (k.ends_with(".Name")
                    || k.ends_with(".Value.DataType")
                    || k.ends_with(".Value.StringValue")
                    || k.ends_with(".Value.BinaryValue")))
    };
    Some(
        pairs
            .iter()
            .filter(|(k, _)| counted(k))
            .map(|(k, v)| {
                if k.ends_with(".BinaryValue") {
                    // Sent base64-encoded; SQS counts the bytes.
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD.decode(v).map_or(v.len(), |b| b.len())
                } else {
                    v.len()
                }
            })
            .sum(),
    )
}

/// SQS's refusal of a message over the queue's maximum size, as API Gateway
/// receives it (status 400).
pub fn message_too_long(max_bytes: usize, request_id: &str) -> Value {
    json!({
        "Error": {
            "Code": "InvalidParameterValue",
            "Message": format!("One or more parameters are invalid. Reason: Message must be shorter than {max_bytes} bytes."),
            "Type": "Sender",
        },
        "RequestId": request_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_body_and_every_attribute_in_bytes() {
        let form = "Action=SendMessage&MessageBody=%F0%9F%98%80%C3%A9x\
                    &MessageAttribute.1.Name=owner&MessageAttribute.1.Value.DataType=String\
                    &MessageAttribute.1.Value.StringValue=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\
                    &MessageAttribute.2.Name=b&MessageAttribute.2.Value.DataType=Binary\
                    &MessageAttribute.2.Value.BinaryValue=AAEC&Version=2012-11-05";
        // Body: 4 + 2 + 1 bytes (3 characters); owner: 5 + 6 + 36; b: 1 + 6 + 3 decoded bytes.
        assert_eq!(send_message_size(form.as_bytes()), Some(7 + 47 + 10));
        assert_eq!(send_message_size(b"Action=ReceiveMessage&MessageBody=x"), None);
        let refusal = message_too_long(262_144, "r1");
        assert_eq!(refusal["Error"]["Code"], "InvalidParameterValue");
        assert_eq!(
            refusal["Error"]["Message"],
            "One or more parameters are invalid. Reason: Message must be shorter than 262144 bytes."
        );
    }

    #[test]
    fn send_message_response() {
        let xml = r#"<SendMessageResponse xmlns="http://queue.amazonaws.com/doc/2012-11-05/"><SendMessageResult><MD5OfMessageBody>5eb63bbbe01eeed093cb22bb8f5acdc3</MD5OfMessageBody><MessageId>6afc90aa-fbc1-4758-a399-22ea44b2e3f6</MessageId></SendMessageResult><ResponseMetadata><RequestId>bYHAvy</RequestId></ResponseMetadata></SendMessageResponse>"#;
        assert_eq!(
            xml_to_json(xml).unwrap(),
            json!({"SendMessageResponse": {
                "ResponseMetadata": {"RequestId": "bYHAvy"},
                "SendMessageResult": {
                    "MD5OfMessageAttributes": null,
                    "MD5OfMessageBody": "5eb63bbbe01eeed093cb22bb8f5acdc3",
                    "MD5OfMessageSystemAttributes": null,
                    "MessageId": "6afc90aa-fbc1-4758-a399-22ea44b2e3f6",
                    "SequenceNumber": null
                }
            }})
        );
    }

    #[test]
    fn error_response() {
        let xml = r#"<ErrorResponse xmlns="http://queue.amazonaws.com/doc/2012-11-05/"><Error><Type>Sender</Type><Code>AWS.SimpleQueueService.NonExistentQueue</Code><Message>The specified queue does not exist for this wsdl version.</Message><message>The specified queue does not exist.</message></Error><RequestId>s3sX</RequestId></ErrorResponse>"#;
        assert_eq!(
            xml_to_json(xml).unwrap(),
            json!({"Error": {"Code": "AWS.SimpleQueueService.NonExistentQueue", "Message": "The specified queue does not exist for this wsdl version.", "Type": "Sender"}, "RequestId": "s3sX"})
        );
    }

    #[test]
    fn entities_repeated_elements_and_empty_elements() {
        let xml = "<SendMessageBatchResponse><SendMessageBatchResult><SendMessageBatchResultEntry><Id>1</Id></SendMessageBatchResultEntry><SendMessageBatchResultEntry><Id>2</Id></SendMessageBatchResultEntry></SendMessageBatchResult><ResponseMetadata><RequestId>a&amp;b &#65;&#x42;&lt;&quot;</RequestId><Empty/></ResponseMetadata></SendMessageBatchResponse>";
        let v = xml_to_json(xml).unwrap();
        assert_eq!(
            v["SendMessageBatchResponse"]["SendMessageBatchResult"]["SendMessageBatchResultEntry"],
            json!([{"Id": "1"}, {"Id": "2"}])
        );
        assert_eq!(v["SendMessageBatchResponse"]["ResponseMetadata"]["RequestId"], "a&b AB<\"");
        assert_eq!(v["SendMessageBatchResponse"]["ResponseMetadata"]["Empty"], Value::Null);
    }

    #[test]
    fn rejects_non_xml() {
        assert!(xml_to_json("").is_err());
        assert!(xml_to_json("<a><b></a>").is_err());
    }
}
