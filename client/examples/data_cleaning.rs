//! The classic stream-processing example: read raw log lines, keep only
//! those containing `>>>`, and forward what follows the last `>>>`
//! (`"atguigu>>>ximenqing"` → `"ximenqing"`).
//!
//! ```sh
//! runnel topic create raw-logs -p 3 && runnel topic create clean-logs -p 3
//! cargo run -p runnel-client --example data_cleaning -- 127.0.0.1:9092 raw-logs clean-logs
//! printf 'atguigu>>>ximenqing\nnoise\n' | runnel produce raw-logs
//! runnel consume clean-logs --follow
//! ```
//!
//! Start it several times: the instances share the input partitions.

use runnel_client::ClientConfig;
use runnel_client::streams::StreamBuilder;

#[tokio::main]
async fn main() -> runnel_client::Result<()> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let input = args.next().unwrap_or_else(|| "raw-logs".into());
    let output = args.next().unwrap_or_else(|| "clean-logs".into());
    cleaning(&input)
        .sink(output)
        .run(ClientConfig::new(&bootstrap)?, "data-cleaning")
        .await
}

/// The topology's steps: filter, then keep what follows the last `>>>`.
fn cleaning(input: &str) -> StreamBuilder {
    StreamBuilder::source(input)
        .filter(|r| r.value_str().is_some_and(|v| v.contains(">>>")))
        .map(|r| {
            let cleaned = r
                .value_str()
                .and_then(|v| v.rsplit(">>>").next())
                .unwrap_or_default()
                .to_owned();
            r.with_value(cleaned)
        })
}
