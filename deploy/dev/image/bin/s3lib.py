"""Minimal signed (SigV4) S3 client for the replica's jobs: create/head/delete/wait the bucket, put an object."""
import datetime, hashlib, hmac, os, sys, time, urllib.error, urllib.request

endpoint = os.environ.get("S3_ENDPOINT", "http://minio:9000").rstrip("/")
bucket = os.environ.get("S3_BUCKET", "rewst-artifacts")
access, secret = os.environ["S3_ACCESS_KEY"], os.environ["S3_SECRET_KEY"]
region = "us-east-1"


def sign(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def request(method, path, body=b"", query=""):
    host = endpoint.split("://", 1)[1]
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload = hashlib.sha256(body).hexdigest()
    headers = {"host": host, "x-amz-content-sha256": payload, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join([method, path, query, "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)), signed, payload])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = sign(sign(sign(sign(("AWS4" + secret).encode(), day), region), "s3"), "aws4_request")
    sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = f"AWS4-HMAC-SHA256 Credential={access}/{scope}, SignedHeaders={signed}, Signature={sig}"
    url = endpoint + path + (("?" + query) if query else "")
    req = urllib.request.Request(url, data=body if method in ("PUT", "POST") else None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def main(verb, *args):
    if verb == "create-bucket":
        code, body = request("PUT", f"/{bucket}")
        if code == 200 or b"BucketAlreadyOwnedByYou" in body or b"BucketAlreadyExists" in body:
            code, _ = request("PUT", f"/{bucket}/.keep", b"bucket created by minio-init\n")
            print(f"bucket {bucket} ready")
            return 0 if code == 200 else 1
        print(f"create bucket {bucket}: HTTP {code} {body[:200]!r}", file=sys.stderr)
        return 1
    if verb == "head-bucket":
        code, _ = request("HEAD", f"/{bucket}")
        print(f"bucket {bucket}: HTTP {code}")
        return 0 if code == 200 else 1
    if verb == "delete-bucket":
        code, body = request("GET", f"/{bucket}", query="list-type=2")
        for key in body.decode(errors="replace").split("<Key>")[1:]:
            request("DELETE", f"/{bucket}/{key.split('</Key>')[0]}")
        code, body = request("DELETE", f"/{bucket}")
        print(f"delete bucket {bucket}: HTTP {code}")
        return 0 if code in (200, 204) else 1
    if verb == "wait-bucket":
        for _ in range(60):
            if request("HEAD", f"/{bucket}")[0] == 200:
                return 0
            time.sleep(0.5)
        return 1
    if verb == "wait-server":
        for _ in range(120):
            try:
                request("GET", "/")
                return 0
            except OSError:
                time.sleep(0.5)
        return 1
    if verb == "put":
        code, _ = request("PUT", f"/{bucket}/{args[0]}", sys.stdin.buffer.read())
        return 0 if code == 200 else 1
    print("usage: s3 create-bucket|head-bucket|delete-bucket|wait-bucket|wait-server|put KEY", file=sys.stderr)
    return 2
