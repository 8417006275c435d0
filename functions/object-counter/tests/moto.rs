//! The DynamoDB store against moto server with the real SDK client: each
//! test starts its own moto (see the moto-harness crate), whose DynamoDB
//! item calls, TransactWriteItems included, are atomic as DynamoDB's are.

use aws_sdk_dynamodb::types::AttributeValue;
use jobs_core::Timestamp;
use moto_harness::{MotoServer, create_counters_table};
use object_counter::counting::Applied;
use object_counter::dynamodb::{counter_sort_key, object_sort_key};
use object_counter::{Change, CountObjectEvent, Counters, DynamoCounterStore, ObjectEvent, Sequencer, testing};

const TABLE: &str = "counters";
const BUCKET: &str = "results-bucket";

async fn store(moto: &MotoServer) -> (DynamoCounterStore, aws_sdk_dynamodb::Client) {
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    create_counters_table(&client, TABLE).await;
    (DynamoCounterStore::new(client.clone(), TABLE), client)
}

fn event(key: &str, change: Change, seq: &str) -> ObjectEvent {
    ObjectEvent {
        bucket: BUCKET.into(),
        key: key.into(),
        change,
        sequencer: Sequencer::parse(seq).unwrap(),
        event_name: "test".into(),
    }
}

fn c(created: i64, removed: i64, current: i64, bytes: i64) -> Counters {
    Counters { created, removed, current, bytes }
}

#[tokio::test]
async fn created_removed_duplicate_and_reordered_events_count_exactly() {
    let moto = MotoServer::start();
    let (store, client) = store(&moto).await;
    let put = event("results/a b.json", Change::Created { size: 100 }, "0055AED6DCD90281E5");
    let delete = event("results/a b.json", Change::Removed, "0055AED6DCD90281F0");
    let put_again = event("results/a b.json", Change::Created { size: 250 }, "55AED6DCD9028200");

    assert_eq!(store.count(&put, Timestamp(1_795_000_000_000)).await.unwrap(), Applied::Counted { newest: true });
    assert_eq!(store.counters(BUCKET, "").await.unwrap(), Some(c(1, 0, 1, 100)));
    assert_eq!(store.count(&put, Timestamp(2)).await.unwrap(), Applied::Duplicate);
    // The newest event arrives before the delete it follows.
    assert_eq!(store.count(&put_again, Timestamp(3)).await.unwrap(), Applied::Counted { newest: true });
    assert_eq!(store.count(&delete, Timestamp(4)).await.unwrap(), Applied::Counted { newest: false });
    assert_eq!(store.count(&delete, Timestamp(5)).await.unwrap(), Applied::Duplicate);
    assert_eq!(store.counters(BUCKET, "").await.unwrap(), Some(c(2, 1, 1, 250)));
    assert_eq!(store.counters(BUCKET, "results/").await.unwrap(), Some(c(2, 1, 1, 250)));

    // The agreed item shapes (docs/contract.md), which job-status reads.
    let item = client
        .get_item()
        .table_name(TABLE)
        .key("bucket", AttributeValue::S(BUCKET.into()))
        .key("counter", AttributeValue::S(counter_sort_key("results/")))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["counter"].as_s().unwrap(), "counter#results/");
    for (name, value) in [("created", "2"), ("removed", "1"), ("current", "1"), ("bytes", "250")] {
        assert_eq!(item[name].as_n().unwrap(), value, "{name}");
    }
    assert!(item["updatedAt"].as_s().unwrap().ends_with('Z'));
    let object = client
        .get_item()
        .table_name(TABLE)
        .key("bucket", AttributeValue::S(BUCKET.into()))
        .key("counter", AttributeValue::S(object_sort_key("results/a b.json")))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(object["size"].as_n().unwrap(), "250");
    assert_eq!(object["exists"].as_bool().unwrap(), &true);

    // A key without "/" counts only in the total.
    store.count(&event("top.json", Change::Created { size: 7 }, "01"), Timestamp(6)).await.unwrap();
    assert_eq!(store.counters(BUCKET, "").await.unwrap(), Some(c(3, 1, 2, 257)));
    assert_eq!(store.counters(BUCKET, "results/").await.unwrap(), Some(c(2, 1, 1, 250)));
    assert_eq!(store.counters(BUCKET, "top.json").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicated_shuffled_deliveries_count_exactly() {
    let moto = MotoServer::start();
    let (store, _) = store(&moto).await;
    let events = testing::workload(BUCKET, 12);
    let deliveries = testing::deliveries(&events, 3, 11);
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    let mut handles = Vec::new();
    for ev in deliveries {
        let (store, semaphore) = (store.clone(), semaphore.clone());
        handles.push(tokio::spawn(async move {
            let _permit = semaphore.acquire().await.unwrap();
            store.count(&ev, Timestamp(1)).await.unwrap()
        }));
    }
    let mut counted = 0;
    for h in handles {
        if matches!(h.await.unwrap(), Applied::Counted { .. }) {
            counted += 1;
        }
    }
    assert_eq!(counted, events.len(), "each event counted once, duplicates not");
    let (total, results) = testing::expected(&events);
    assert_eq!(store.counters(BUCKET, "").await.unwrap(), Some(total));
    assert_eq!(store.counters(BUCKET, "results/").await.unwrap(), Some(results));
}

/// A transaction that loses the race for an object's state (its revision
/// moved) changes nothing, counters included: DynamoDB's all or nothing,
/// which the local target keeps while copying only the items a transaction
/// touches (local/moto-python).
#[tokio::test]
async fn a_cancelled_transaction_changes_no_counter() {
    use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
    let moto = MotoServer::start();
    let (store, client) = store(&moto).await;
    store.count(&event("results/a.json", Change::Created { size: 10 }, "01"), Timestamp(1)).await.unwrap();
    let key = |sk: String| {
        [("bucket".to_string(), AttributeValue::S(BUCKET.into())), ("counter".to_string(), AttributeValue::S(sk))]
    };
    let add = |prefix: &str| {
        TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(TABLE)
                    .set_key(Some(key(counter_sort_key(prefix)).into()))
                    .update_expression("ADD created :one")
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .build()
                    .unwrap(),
            )
            .build()
    };
    let mut item: std::collections::HashMap<_, _> = key(object_sort_key("results/a.json")).into();
    item.insert("revision".into(), AttributeValue::N("2".into()));
    let stale_put = TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(TABLE)
                .set_item(Some(item))
                .condition_expression("revision = :seen")
                .expression_attribute_values(":seen", AttributeValue::N("0".into()))
                .build()
                .unwrap(),
        )
        .build();
    let err = client
        .transact_write_items()
        .transact_items(add(""))
        .transact_items(stale_put)
        .transact_items(add("results/"))
        .send()
        .await
        .unwrap_err();
    assert!(format!("{:?}", err.into_service_error()).contains("TransactionCanceled"));
    assert_eq!(store.counters(BUCKET, "").await.unwrap(), Some(c(1, 0, 1, 10)));
    assert_eq!(store.counters(BUCKET, "results/").await.unwrap(), Some(c(1, 0, 1, 10)));
}
