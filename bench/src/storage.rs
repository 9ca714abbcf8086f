//! Storage on the local backend: a 200 MiB resumable (TUS) upload against the same bytes as
//! one PUT, and a 4000×3000 JPEG rendered to 400 px (first and cached) against reading the
//! original. Rounds alternate the two sides of each comparison on one running ward.

use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::env::{Env, quantile};

#[derive(clap::Args)]
pub struct Options {
    /// The size of the uploaded file, in MiB.
    #[arg(long, default_value_t = 200)]
    pub mib: usize,
    /// Rounds of each comparison.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// TUS PATCH size, in MiB (Supabase recommends 6).
    #[arg(long, default_value_t = 6)]
    pub chunk_mib: usize,
}

fn service_key(env: &Env) -> String {
    let now = chrono::Utc::now().timestamp();
    env.issuer.sign(&json!({ "role": "service_role", "iat": now, "exp": now + 3600 })).expect("a key")
}

/// A signed upload token for `bucket/path` (the service role asks, as ward's intents do).
async fn upload_token(http: &Client, env: &Env, bucket: &str, path: &str) -> anyhow::Result<String> {
    let answer: Value = http
        .post(format!("{}/storage/v1/object/upload/sign/{bucket}/{path}", env.base))
        .bearer_auth(service_key(env))
        .json(&json!({}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(answer["token"].as_str().context("a token")?.to_string())
}

async fn one_put(http: &Client, env: &Env, path: &str, body: &bytes::Bytes) -> anyhow::Result<Duration> {
    let token = upload_token(http, env, "evidence", path).await?;
    let started = Instant::now();
    let response = http
        .put(format!("{}/storage/v1/object/upload/sign/evidence/{path}?token={token}", env.base))
        .header("content-type", "video/mp4")
        .body(body.clone())
        .send()
        .await?;
    anyhow::ensure!(response.status() == StatusCode::OK, "PUT: {}", response.status());
    Ok(started.elapsed())
}

async fn resumable(
    http: &Client,
    env: &Env,
    path: &str,
    body: &bytes::Bytes,
    chunk: usize,
) -> anyhow::Result<Duration> {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let token = upload_token(http, env, "evidence", path).await?;
    let started = Instant::now();
    let created = http
        .post(format!("{}/storage/v1/upload/resumable/sign", env.base))
        .header("tus-resumable", "1.0.0")
        .header("x-signature", &token)
        .header("upload-length", body.len().to_string())
        .header(
            "upload-metadata",
            format!("bucketName {},objectName {},contentType {}", b64("evidence"), b64(path), b64("video/mp4")),
        )
        .send()
        .await?;
    anyhow::ensure!(created.status() == StatusCode::CREATED, "create: {}", created.status());
    let location = created.headers()["location"].to_str()?.to_string();
    let mut offset = 0;
    while offset < body.len() {
        let end = (offset + chunk).min(body.len());
        let response = http
            .patch(&location)
            .header("tus-resumable", "1.0.0")
            .header("x-signature", &token)
            .header("upload-offset", offset.to_string())
            .header("content-type", "application/offset+octet-stream")
            .body(body.slice(offset..end))
            .send()
            .await?;
        anyhow::ensure!(response.status() == StatusCode::NO_CONTENT, "PATCH: {}", response.status());
        offset = end;
    }
    Ok(started.elapsed())
}

fn jpeg(width: u32, height: u32) -> Vec<u8> {
    // A photo-like gradient with noise, so the JPEG is of a camera's size, not a flat colour's.
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        let n = (x.wrapping_mul(7919) ^ y.wrapping_mul(104_729)) % 32;
        image::Rgb([((x * 255 / width) + n) as u8, ((y * 255 / height) + n) as u8, (128 + n) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img).write_to(&mut out, image::ImageFormat::Jpeg).expect("encode a JPEG");
    out.into_inner()
}

async fn timed_get(http: &Client, url: &str, key: &str) -> anyhow::Result<(Duration, usize)> {
    let started = Instant::now();
    let response = http.get(url).bearer_auth(key).send().await?;
    anyhow::ensure!(response.status() == StatusCode::OK, "GET {url}: {}", response.status());
    let len = response.bytes().await?.len();
    Ok((started.elapsed(), len))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median_ms(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    quantile(&samples, 0.5)
}

pub async fn run(ward_bin: &str, options: &Options) -> anyhow::Result<()> {
    let env = Env::start(ward_bin, 10, &[]).await?;
    let http = Client::builder().timeout(Duration::from_secs(600)).build()?;
    let body = bytes::Bytes::from(
        (0..options.mib * 1024 * 1024)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0])
            .collect::<Vec<u8>>(),
    );
    let mib = body.len() as f64 / (1024.0 * 1024.0);

    println!("## Uploads: {} MiB to the evidence bucket ({} rounds, alternating)\n", options.mib, options.rounds);
    println!("| round | one PUT MiB/s | TUS, one PATCH MiB/s | TUS, {} MiB PATCHes MiB/s |", options.chunk_mib);
    println!("| --- | --- | --- | --- |");
    let (mut put, mut whole, mut chunked) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..options.rounds {
        let p = one_put(&http, &env, &format!("bench/{round}/put.mp4"), &body).await?;
        let w = resumable(&http, &env, &format!("bench/{round}/tus-one.mp4"), &body, body.len()).await?;
        let c =
            resumable(&http, &env, &format!("bench/{round}/tus-chunks.mp4"), &body, options.chunk_mib * 1024 * 1024)
                .await?;
        let rate = |d: Duration| mib / d.as_secs_f64();
        println!("| {} | {:.0} | {:.0} | {:.0} |", round + 1, rate(p), rate(w), rate(c));
        put.push(rate(p));
        whole.push(rate(w));
        chunked.push(rate(c));
    }
    let (put, whole, chunked) = (median_ms(put), median_ms(whole), median_ms(chunked));
    println!(
        "\nmedian: one PUT {put:.0} MiB/s; TUS one PATCH {whole:.0} MiB/s ({:.0}%); TUS in {} MiB PATCHes {chunked:.0} MiB/s ({:.0}%)\n",
        100.0 * whole / put,
        options.chunk_mib,
        100.0 * chunked / put
    );

    println!("## Rendering a 4000×3000 JPEG to 400 px wide\n");
    let photo = bytes::Bytes::from(jpeg(4000, 3000));
    let key = service_key(&env);
    println!("source: {:.1} MiB JPEG\n", photo.len() as f64 / (1024.0 * 1024.0));
    println!("| round | original GET ms (median of 20) | first render ms | cached render ms (median of 20) |");
    println!("| --- | --- | --- | --- |");
    let (mut originals, mut firsts, mut cached) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..options.rounds {
        // A fresh object each round, so the first render is a real one.
        let path = format!("bench/{round}/photo.jpg");
        let stored = http
            .post(format!("{}/storage/v1/object/evidence/{path}", env.base))
            .bearer_auth(&key)
            .header("content-type", "image/jpeg")
            .body(photo.clone())
            .send()
            .await?;
        anyhow::ensure!(stored.status() == StatusCode::OK, "storing the photo: {}", stored.status());
        let original = format!("{}/storage/v1/object/evidence/{path}", env.base);
        let render = format!("{}/storage/v1/render/image/authenticated/evidence/{path}?width=400", env.base);
        let mut round_originals = Vec::new();
        for _ in 0..20 {
            round_originals.push(ms(timed_get(&http, &original, &key).await?.0));
        }
        let (first, len) = timed_get(&http, &render, &key).await?;
        anyhow::ensure!(len > 0 && len < photo.len(), "a smaller rendering");
        let mut round_cached = Vec::new();
        for _ in 0..20 {
            round_cached.push(ms(timed_get(&http, &render, &key).await?.0));
        }
        let (o, c) = (median_ms(round_originals), median_ms(round_cached));
        println!("| {} | {o:.2} | {:.0} | {c:.2} |", round + 1, ms(first));
        originals.push(o);
        firsts.push(ms(first));
        cached.push(c);
    }
    let (o, f, c) = (median_ms(originals), median_ms(firsts), median_ms(cached));
    println!(
        "\nmedian: original {o:.2} ms; first render {f:.0} ms ({:.0}× the original); cached {c:.2} ms ({:.2}× the original)",
        f / o,
        c / o
    );
    // Where a first render's time goes, measured in this process with the same crate.
    let (mut decode, mut resize, mut encode) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        let started = Instant::now();
        let img = image::load_from_memory_with_format(&photo, image::ImageFormat::Jpeg)?;
        decode.push(ms(started.elapsed()));
        let started = Instant::now();
        let small = img.thumbnail(400, 400);
        resize.push(ms(started.elapsed()));
        let started = Instant::now();
        let mut out = std::io::Cursor::new(Vec::new());
        small.write_to(&mut out, image::ImageFormat::Jpeg)?;
        encode.push(ms(started.elapsed()));
    }
    println!(
        "a first render's parts (median of 5, in-process): decode {:.0} ms, resize {:.0} ms, encode {:.1} ms",
        median_ms(decode),
        median_ms(resize),
        median_ms(encode)
    );
    env.stop();
    Ok(())
}
