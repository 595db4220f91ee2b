use vireo_store::{StoreError, Token, TokenKind};

use crate::harness::TestDb;
use crate::new_id;

crate::backend_tests!(credentials, tokens_and_expiry);

async fn credentials(db: &TestDb) {
    let s = &db.store;
    let user = new_id();
    assert!(s.get_password_hash(&user).await.unwrap().is_none());
    let mut tx = s.begin().await.unwrap();
    tx.set_password_hash(&user, "$argon2id$one").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        s.get_password_hash(&user).await.unwrap().as_deref(),
        Some("$argon2id$one")
    );
    let mut tx = s.begin().await.unwrap();
    tx.set_password_hash(&user, "$argon2id$two").await.unwrap();
    assert_eq!(
        tx.get_password_hash(&user).await.unwrap().as_deref(),
        Some("$argon2id$two")
    );
    tx.commit().await.unwrap();
    assert_eq!(
        s.get_password_hash(&user).await.unwrap().as_deref(),
        Some("$argon2id$two")
    );
    let mut tx = s.begin().await.unwrap();
    assert!(tx.delete_credentials(&user).await.unwrap());
    assert!(!tx.delete_credentials(&user).await.unwrap());
    assert!(matches!(
        tx.set_password_hash("", "x").await,
        Err(StoreError::Invalid(_))
    ));
    tx.commit().await.unwrap();
    assert!(s.get_password_hash(&user).await.unwrap().is_none());
}

fn token(hash: &str, user: &str, kind: TokenKind, expires_ms: i64) -> Token {
    Token {
        token_hash: hash.into(),
        user_id: user.into(),
        kind,
        created_ms: 1_000,
        expires_ms,
        last_used_ms: 1_000,
    }
}

async fn tokens_and_expiry(db: &TestDb) {
    let s = &db.store;
    let (u1, u2) = (new_id(), new_id());
    let now = 10_000;
    let live = token("sha256:live", &u1, TokenKind::Bearer, now + 1_000);
    let expired = token("sha256:expired", &u1, TokenKind::Session, now - 1);
    let other = token("sha256:other", &u2, TokenKind::Session, now + 5_000);

    let mut tx = s.begin().await.unwrap();
    for t in [&live, &expired, &other] {
        tx.insert_token(t).await.unwrap();
    }
    assert!(matches!(
        tx.insert_token(&live).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        tx.insert_token(&token("", &u1, TokenKind::Bearer, 0)).await,
        Err(StoreError::Invalid(_))
    ));
    tx.commit().await.unwrap();

    assert_eq!(
        s.get_token("sha256:live").await.unwrap(),
        Some(live.clone())
    );
    assert_eq!(
        s.get_token("sha256:expired").await.unwrap(),
        Some(expired.clone())
    );
    assert!(expired.is_expired(now) && !live.is_expired(now));
    assert_eq!(
        s.get_live_token("sha256:live", now).await.unwrap(),
        Some(live.clone())
    );
    assert!(s
        .get_live_token("sha256:expired", now)
        .await
        .unwrap()
        .is_none());
    assert!(
        s.get_live_token("sha256:live", now + 1_000)
            .await
            .unwrap()
            .is_none(),
        "expiry is exclusive"
    );
    assert!(s.get_token("sha256:nope").await.unwrap().is_none());

    let mut tx = s.begin().await.unwrap();
    assert!(tx.touch_token("sha256:live", now + 10, None).await.unwrap());
    assert!(tx
        .touch_token("sha256:other", now + 20, Some(now + 9_000))
        .await
        .unwrap());
    assert!(!tx.touch_token("sha256:nope", now, None).await.unwrap());
    tx.commit().await.unwrap();
    let t = s.get_token("sha256:live").await.unwrap().unwrap();
    assert_eq!((t.last_used_ms, t.expires_ms), (now + 10, now + 1_000));
    let t = s.get_token("sha256:other").await.unwrap().unwrap();
    assert_eq!(
        (t.last_used_ms, t.expires_ms, t.kind),
        (now + 20, now + 9_000, TokenKind::Session)
    );

    let mut tx = s.begin().await.unwrap();
    assert_eq!(tx.delete_expired_tokens(now).await.unwrap(), 1);
    assert_eq!(tx.delete_expired_tokens(now).await.unwrap(), 0);
    assert!(tx.get_token("sha256:expired").await.unwrap().is_none());
    assert_eq!(tx.delete_user_tokens(&u2).await.unwrap(), 1);
    assert!(tx.delete_token("sha256:live").await.unwrap());
    assert!(!tx.delete_token("sha256:live").await.unwrap());
    tx.commit().await.unwrap();
    assert!(s.get_token("sha256:other").await.unwrap().is_none());
    assert!(s.get_token("sha256:live").await.unwrap().is_none());
}
