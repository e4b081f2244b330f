"""Runs in the probe pod: uses in-cluster config (the mounted service-account
token and the KUBERNETES_SERVICE_* env) and prints one JSON line for the test."""

import asyncio
import json
import os
import pathlib
import time

from kubernetes_asyncio import client, config

SA_DIR = pathlib.Path("/var/run/secrets/kubernetes.io/serviceaccount")


async def probe() -> dict:
    config.load_incluster_config()
    namespace = (SA_DIR / "namespace").read_text().strip()
    result = {"namespace": namespace, "pod": os.environ.get("POD_NAME"), "greeting": os.environ.get("GREETING")}
    async with client.ApiClient() as api:
        review = await client.AuthenticationV1Api(api).create_self_subject_review(
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        )
        result["user"] = review.status.user_info.username
        core = client.CoreV1Api(api)
        configmaps = await core.list_namespaced_config_map(namespace)
        result["configmaps"] = sorted(cm.metadata.name for cm in configmaps.items)
        try:
            await core.list_namespaced_secret(namespace)
            result["secrets"] = "allowed"
        except client.ApiException as exc:
            result["secrets"] = exc.status
    # The emptyDir volume is writable scratch space private to this pod.
    scratch = pathlib.Path("/scratch/result.json")
    scratch.write_text(json.dumps(result))
    result["scratch"] = json.loads(scratch.read_text()) == result
    return result


print("PROBE " + json.dumps(asyncio.run(probe())), flush=True)
# A Deployment's pod is meant to keep running; wait until it is deleted.
time.sleep(3600)
