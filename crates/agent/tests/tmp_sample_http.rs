#[path = "../../cli/src/sample_http.rs"]
mod sample_http;

#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    args: sample_http::SampleHttpArgs,
}

#[test]
fn parses() {
    use clap::Parser;
    let c = Cli::try_parse_from(["x", "--port", "9", "--cpu-work-ms", "5"]).unwrap();
    assert_eq!(c.args.port, 9);
    let _ = sample_http::run;
}

#[test]
fn serve_child() {
    if std::env::var_os("SAMPLE_CHILD").is_none() { return; }
    use clap::Parser;
    let c = Cli::parse_from(["x"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(sample_http::run(c.args)).unwrap();
    std::process::exit(0);
}
