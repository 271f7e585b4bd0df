// What both test pages share: the configuration the Go test serves, and
// the elements it reads (#status, #result) and clicks (#login, #logout).
export const $ = (id) => document.getElementById(id);

export async function config() {
  return (await fetch("/config.json")).json();
}

export function show(status, result) {
  $("status").textContent = status;
  if (result !== undefined) $("result").textContent = JSON.stringify(result);
}

export function run(main) {
  main().catch((e) => show(describe(e)));
}

// describe says what went wrong, with what the libraries attach to errors
// (openid-client: code and cause; OAuth errors: error).
export function describe(e) {
  let s = `error: ${e.name}: ${e.message}`;
  if (e.code) s += ` [${e.code}]`;
  if (e.error) s += ` (${e.error}: ${e.error_description ?? ""})`;
  if (e.cause) s += ` cause: ${e.cause.message ?? JSON.stringify(e.cause)}`;
  return s;
}
