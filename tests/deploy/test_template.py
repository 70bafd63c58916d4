"""deploy/logrouter.yaml, deployed into moto's CloudFormation for each
Compute value, and checked in its structure where moto does not model a
resource or a property (issue #23, "The template").

What moto 5.2.5's CloudFormation does not model, as found in its code and
asserted below (test_moto_skips_exactly_these), so that a moto upgrade that
starts modelling one of them fails here and the check can move to the
deployed stack:
- resource types it skips: AWS::SQS::QueuePolicy, AWS::CloudWatch::Alarm,
  AWS::ApplicationAutoScaling::ScalableTarget and ::ScalingPolicy;
- properties it ignores: a bucket's NotificationConfiguration and
  LifecycleConfiguration; a function's Architectures, EphemeralStorage and
  LoggingConfig; a cluster's ClusterSettings; a task definition's Cpu,
  RuntimePlatform, NetworkMode and roles; a service's LaunchType and
  NetworkConfiguration;
- the template's Rules (never evaluated).
The notifications are therefore applied from the template (resolved
against the created stack) with the S3 API before an object is put.
"""

import io
import json
import re
import time
import zipfile
from urllib.parse import unquote_plus

import pytest
from cfnlint.decode import decode

from conftest import ROOT, TEMPLATE

SOURCE_PREFIX = "logs/"
ROUTED_PREFIX = "routed/"
# moto does not create these types from a template (checked below).
MOTO_SKIPS = {
    "AWS::SQS::QueuePolicy",
    "AWS::CloudWatch::Alarm",
    "AWS::ApplicationAutoScaling::ScalableTarget",
    "AWS::ApplicationAutoScaling::ScalingPolicy",
}
# The resources of the template before Compute existed: Compute=none makes
# exactly these.
TODAY = {
    "RouterDeadLetterQueue", "RouterQueue", "RouterQueuePolicy",
    "LoaderDeadLetterQueue", "LoaderQueue", "LoaderQueuePolicy",
    "SourceBucket", "RoutedBucket",
    "RouterTaskRole", "LoaderTaskRole", "RedshiftCopyRole",
    "RouterDeadLetterAlarm", "LoaderDeadLetterAlarm", "RouterLagAlarm", "LoaderLagAlarm",
}  # fmt: skip
COUNTERS = [
    "logrouter_router_lines_read_total",
    "logrouter_router_lines_routed_total",
    "logrouter_router_lines_quarantined_total",
    "logrouter_router_sources_total",
    "logrouter_loader_rows_loaded_total",
    "logrouter_loader_rows_rejected_total",
    "logrouter_loader_failures_total",
    "logrouter_queue_objects_total",
]


@pytest.fixture(scope="module")
def tpl():
    template, matches = decode(str(TEMPLATE))
    assert not matches, matches
    return template


def params_with_defaults(tpl, given):
    out = {k: str(v.get("Default")) if "Default" in v else None for k, v in tpl["Parameters"].items()}
    out.update(given)
    for k, v in tpl["Parameters"].items():
        if v["Type"] == "CommaDelimitedList" and isinstance(out[k], str):
            out[k] = out[k].split(",")
    return out


def condition(tpl, name, params):
    """Evaluates one of the template's Conditions for parameter values."""

    def ev(x):
        if isinstance(x, str):
            return x
        if isinstance(x, list):
            return [ev(i) for i in x]
        ((fn, arg),) = x.items()
        if fn == "Ref":
            return params[arg]
        if fn == "Condition":
            return condition(tpl, arg, params)
        if fn == "Fn::Equals":
            return ev(arg[0]) == ev(arg[1])
        if fn == "Fn::Not":
            return not ev(arg[0])
        if fn == "Fn::And":
            return all(ev(a) for a in arg)
        if fn == "Fn::Or":
            return any(ev(a) for a in arg)
        if fn == "Fn::Join":
            return arg[0].join(ev(arg[1]))
        raise AssertionError(f"condition function {fn} not handled")

    return ev(tpl["Conditions"][name])


def resources_for(tpl, params):
    return {
        name
        for name, r in tpl["Resources"].items()
        if "Condition" not in r or condition(tpl, r["Condition"], params)
    }


# --- structure (no moto) ---------------------------------------------------


def test_template_fits_a_template_body(tpl):
    # aws cloudformation deploy sends a template as TemplateBody up to
    # 51,200 bytes; larger ones need --s3-bucket (and the README's commands
    # would break).
    assert TEMPLATE.stat().st_size <= 51_200


def test_compute_values_are_each_linted(tpl):
    allowed = set(tpl["Parameters"]["Compute"]["AllowedValues"])
    assert allowed == {"none", "lambda", "fargate"}
    assert tpl["Parameters"]["Compute"]["Default"] == "none"
    linted = set()
    for f in (ROOT / "tests/deploy/cfn-lint").glob("*.yaml"):
        d, m = decode(str(f))
        assert not m and d["template-file-path"] == "deploy/logrouter.yaml"
        linted.add(d["parameters"]["Compute"])
    assert linted == allowed


def test_none_keeps_todays_resources(tpl):
    p = params_with_defaults(tpl, {})
    assert resources_for(tpl, p) == TODAY
    p["RedshiftSecretArn"] = "arn:aws:secretsmanager:us-east-1:123456789012:secret:s"
    assert resources_for(tpl, p) == TODAY | {"LoaderSecretPolicy"}
    # and today's queue visibility (the Rust config test reads this default)
    assert tpl["Parameters"]["VisibilityTimeoutSeconds"]["Default"] == 300
    for q in ("RouterQueue", "LoaderQueue"):
        vis = tpl["Resources"][q]["Properties"]["VisibilityTimeout"]
        assert vis["Fn::If"][0] == "IsLambda"
        assert vis["Fn::If"][2] == {"Ref": "VisibilityTimeoutSeconds"}


def test_visibility_is_six_times_every_allowed_function_timeout(tpl):
    window = tpl["Parameters"]["LoaderBatchingWindowSeconds"]["MaxValue"]
    for q, timeout in (("RouterQueue", "RouterTimeoutSeconds"), ("LoaderQueue", "LoaderTimeoutSeconds")):
        lam = tpl["Resources"][q]["Properties"]["VisibilityTimeout"]["Fn::If"][1]
        mapping, key, attr = lam["Fn::FindInMap"]
        assert key == {"Ref": timeout}
        # a String parameter: FindInMap keys are strings (moto fails on a Number's)
        assert tpl["Parameters"][timeout]["Type"] == "String"
        for key in tpl["Parameters"][timeout]["AllowedValues"]:
            t = int(key)
            vis = tpl["Mappings"][mapping][key][attr]
            assert vis >= 6 * t, (t, vis)
            # the poller holds messages during the batching window too
            assert vis >= t + window
            assert vis <= 43_200
        assert max(map(int, tpl["Parameters"][timeout]["AllowedValues"])) <= 900


def test_rules_require_what_each_compute_needs(tpl):
    # moto never evaluates Rules: check they exist and test the right things.
    rules = tpl["Rules"]
    assert rules["LambdaNeedsCode"]["RuleCondition"] == {"Fn::Equals": [{"Ref": "Compute"}, "lambda"]}
    text = json.dumps(rules)
    for needed in ("CodeBucket", "Warehouse", "ImageUri", "Subnets", "SecurityGroupIds", "VpcId"):
        assert f'{{"Ref": "{needed}"}}' in text, needed


def test_lambda_properties_moto_ignores(tpl):
    for b in ("Router", "Loader"):
        f = tpl["Resources"][f"{b}Function"]["Properties"]
        assert f["Architectures"] == [{"Ref": "Architecture"}]
        assert f["Runtime"] == "provided.al2023" and f["Handler"] == "bootstrap"
        assert f["EphemeralStorage"] == {"Size": {"Ref": f"{b}EphemeralStorageMB"}}
        assert f["LoggingConfig"]["LogGroup"] == {"Ref": f"{b}LogGroup"}
    assert tpl["Parameters"]["Architecture"]["AllowedValues"] == ["arm64", "x86_64"]
    assert tpl["Parameters"]["Architecture"]["Default"] == "arm64"
    for b, default in (("Router", 50), ("Loader", 2)):
        p = tpl["Parameters"][f"{b}MaximumConcurrency"]
        assert (p["Default"], p["MinValue"], p["MaxValue"]) == (default, 2, 1000)


def test_routed_bucket_aborts_incomplete_uploads(tpl):
    rules = tpl["Resources"]["RoutedBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert {"Id": "abort-incomplete-multipart-uploads", "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}} in rules  # fmt: skip


def _metric(q):
    m = q["MetricStat"]["Metric"]
    dims = {d["Name"]: d["Value"] for d in m.get("Dimensions", [])}
    return m["Namespace"], m["MetricName"], dims


@pytest.mark.parametrize("b", ["Router", "Loader"])
def test_fargate_scaling(tpl, b):
    res = tpl["Resources"]
    target = res[f"{b}ScalableTarget"]["Properties"]
    assert target["ResourceId"] == {"Fn::Sub": f"service/${{Cluster}}/${{{b}Service.Name}}"}
    assert target["ScalableDimension"] == "ecs:service:DesiredCount"
    assert target["MinCapacity"] == {"Ref": f"{b}MinTasks"}
    assert target["MaxCapacity"] == {"Ref": f"{b}MaxTasks"}
    assert tpl["Parameters"][f"{b}MinTasks"]["Default"] == 0
    queue = {"QueueName": {"Fn::GetAtt": [f"{b}Queue", "QueueName"]}}
    service = {"ClusterName": {"Ref": "Cluster"}, "ServiceName": {"Fn::GetAtt": [f"{b}Service", "Name"]}}

    # target tracking: backlog per running task, by metric math
    tt = res[f"{b}BacklogScaling"]["Properties"]
    assert tt["PolicyType"] == "TargetTrackingScaling"
    assert tt["ScalingTargetId"] == {"Ref": f"{b}ScalableTarget"}
    cfg = tt["TargetTrackingScalingPolicyConfiguration"]
    assert cfg["TargetValue"] == {"Ref": f"{b}BacklogPerTask"}
    qs = {q["Id"]: q for q in cfg["CustomizedMetricSpecification"]["Metrics"]}
    assert _metric(qs["visible"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible", queue)
    assert _metric(qs["inflight"]) == ("AWS/SQS", "ApproximateNumberOfMessagesNotVisible", queue)
    assert _metric(qs["running"]) == ("ECS/ContainerInsights", "RunningTaskCount", service)
    returned = [q for q in qs.values() if q.get("ReturnData", True)]
    assert len(returned) == 1 and returned[0]["Expression"] == "(visible + inflight) / running"
    settings = res["Cluster"]["Properties"]["ClusterSettings"]
    assert {"Name": "containerInsights", "Value": "enabled"} in settings

    # the 0 -> 1 step: exactly one task, only while none runs and messages wait
    step = res[f"{b}ScaleFromZero"]["Properties"]
    assert step["PolicyType"] == "StepScaling"
    assert step["ScalingTargetId"] == {"Ref": f"{b}ScalableTarget"}
    sc = step["StepScalingPolicyConfiguration"]
    assert sc["AdjustmentType"] == "ExactCapacity"
    assert sc["StepAdjustments"] == [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]
    alarm = res[f"{b}ScaleFromZeroAlarm"]["Properties"]
    assert alarm["AlarmActions"] == [{"Ref": f"{b}ScaleFromZero"}]
    aq = {q["Id"]: q for q in alarm["Metrics"]}
    assert _metric(aq["visible"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible", queue)
    assert _metric(aq["running"]) == ("ECS/ContainerInsights", "RunningTaskCount", service)
    expr = aq["idle_with_work"]["Expression"]
    assert expr == "IF(visible > 0 AND FILL(running, 0) == 0, 1, 0)"
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    # fires at (visible, running) = (3, 0) only: evaluate the expression
    py = expr.replace("IF(", "_if(").replace(" AND ", " and ").replace("FILL(running, 0)", "(running or 0)")
    _if = lambda c, a, b: a if c else b  # noqa: E731
    for visible, running, fires in ((3, 0, True), (3, None, True), (0, 0, False), (3, 2, False)):
        assert (eval(py, {"_if": _if, "visible": visible, "running": running}) >= 1) == fires


@pytest.mark.parametrize("b", ["router", "loader"])
def test_fargate_task_definition_properties_moto_ignores(tpl, b):
    td = tpl["Resources"][f"{b.capitalize()}TaskDefinition"]["Properties"]
    assert td["RequiresCompatibilities"] == ["FARGATE"] and td["NetworkMode"] == "awsvpc"
    assert td["RuntimePlatform"]["CpuArchitecture"] == {"Fn::If": ["IsArm64", "ARM64", "X86_64"]}
    assert td["TaskRoleArn"] == {"Fn::GetAtt": [f"{b.capitalize()}TaskRole", "Arn"]}
    svc = tpl["Resources"][f"{b.capitalize()}Service"]["Properties"]
    assert svc["LaunchType"] == "FARGATE"
    assert "DesiredCount" not in svc  # Application Auto Scaling owns it
    net = svc["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert net["Subnets"] == {"Ref": "Subnets"}
    assert net["AssignPublicIp"] == {"Ref": "AssignPublicIp"}


# --- deployed into moto ----------------------------------------------------


class Stack:
    def __init__(self, aws, name, params):
        self.aws, self.name, self.params = aws, name, params
        res = aws.cloudformation.list_stack_resources(StackName=name)["StackResourceSummaries"]
        self.blank_entries = sum(1 for r in res if not r["LogicalResourceId"])
        res = [r for r in res if r["LogicalResourceId"]]
        self.physical = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in res}
        self.types = {r["LogicalResourceId"]: r["ResourceType"] for r in res}
        desc = aws.cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        self.status = desc["StackStatus"]
        self.outputs = {o["OutputKey"]: o["OutputValue"] for o in desc.get("Outputs", [])}

    def queue_attr(self, logical, attr):
        url = self.physical[logical]
        return self.aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[attr])["Attributes"][attr]

    def resolve(self, x):
        """The few intrinsics of the buckets' notifications, against this stack."""
        if isinstance(x, list):
            return [self.resolve(i) for i in x]
        if not isinstance(x, dict):
            return x
        if len(x) == 1:
            ((fn, arg),) = x.items()
            if fn == "Ref":
                return self.params[arg] if arg in self.params else self.physical[arg]
            if fn == "Fn::GetAtt":
                assert self.types[arg[0]] == "AWS::SQS::Queue" and arg[1] == "Arn"
                return self.queue_attr(arg[0], "QueueArn")
            if fn == "Fn::Sub":
                return re.sub(r"\$\{([A-Za-z0-9:]+)\}", lambda m: self.resolve({"Ref": m.group(1)}), arg)
        return {k: self.resolve(v) for k, v in x.items()}


def deploy(aws, tpl, name, given):
    params = params_with_defaults(tpl, given)
    aws.cloudformation.create_stack(
        StackName=name,
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": str(v)} for k, v in given.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    for _ in range(100):
        status = aws.cloudformation.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
        if not status.endswith("IN_PROGRESS"):
            break
        time.sleep(0.1)
    stack = Stack(aws, name, {k: (",".join(v) if isinstance(v, list) else v) for k, v in params.items()})
    assert stack.status == "CREATE_COMPLETE", aws.cloudformation.describe_stack_events(StackName=name)
    return stack, params


def dummy_zip():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\nexit 1\n")
    return buf.getvalue()


@pytest.fixture(scope="module")
def stacks(aws, tpl):
    """One stack per Compute value, with non-default values where the test
    checks that a parameter reaches the resource."""
    aws.s3.create_bucket(Bucket="acme-code")
    for arch in ("arm64", "x86_64"):
        for b in ("router", "loader"):
            aws.s3.put_object(Bucket="acme-code", Key=f"1.0/{b}-lambda-{arch}.zip", Body=dummy_zip())
    vpc = aws.ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    subnets = [s["SubnetId"] for s in aws.ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]][:2]
    common = {"SourcePrefix": SOURCE_PREFIX, "RoutedPrefix": ROUTED_PREFIX, "MetricsNamespace": "acme/logrouter"}
    given = {
        "none": {**common, "VisibilityTimeoutSeconds": 600},
        "lambda": {
            **common, "Compute": "lambda", "CodeBucket": "acme-code",
            "RouterCodeKey": "1.0/router-lambda-arm64.zip", "LoaderCodeKey": "1.0/loader-lambda-arm64.zip",
            "Warehouse": "redshift://analytics/dev?db_user=loader", "AppendCopyRoleToWarehouse": "true",
            "RouterTimeoutSeconds": 600, "LoaderTimeoutSeconds": 120,
            "RouterMaximumConcurrency": 37, "LoaderMaximumConcurrency": 2,
            "RouterBatchSize": 3, "LoaderBatchSize": 50, "LoaderBatchingWindowSeconds": 20,
            "RouterMemoryMB": 2048, "LogRetentionDays": 14,
        },
        "fargate": {
            **common, "Compute": "fargate", "ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/logrouter:1.0",
            "Warehouse": "postgres://loader@db.internal:5432/events",
            "Subnets": ",".join(subnets), "VpcId": vpc, "Architecture": "x86_64",
        },
    }  # fmt: skip
    out = {}
    for compute, g in given.items():
        g = {**g, "SourceBucketName": f"acme-{compute}-archive", "RoutedBucketName": f"acme-{compute}-routed"}
        out[compute] = deploy(aws, tpl, f"logrouter-{compute}", g)
    return out


COMPUTES = ["none", "lambda", "fargate"]


@pytest.mark.parametrize("compute", COMPUTES)
def test_moto_skips_exactly_these(tpl, stacks, compute):
    stack, params = stacks[compute]
    expected = resources_for(tpl, params)
    if compute == "none":
        assert expected == TODAY
    created = set(stack.physical)
    skipped = {n: tpl["Resources"][n]["Type"] for n in expected - created}
    assert created <= expected
    # moto lists each resource it did not create (its condition is false, or
    # its type is skipped) as an entry with empty ids
    assert stack.blank_entries == len(tpl["Resources"]) - len(created)
    assert set(skipped.values()) <= MOTO_SKIPS, skipped
    # a resource type moto starts creating shows up here: move its checks
    assert {tpl["Resources"][n]["Type"] for n in expected} & MOTO_SKIPS == set(skipped.values())


@pytest.mark.parametrize("compute", COMPUTES)
def test_buckets_notify_the_created_queues(aws, tpl, stacks, compute):
    stack, _ = stacks[compute]
    for bucket, queue, inside, outside in (
        ("SourceBucket", "RouterQueue", f"{SOURCE_PREFIX}2024/05/01/app.log.gz", "other/app.log.gz"),
        ("RoutedBucket", "LoaderQueue", f"{ROUTED_PREFIX}_manifests/dt=2024-05-01/a.json",
         f"{ROUTED_PREFIX}click/dt=2024-05-01/a.part-0.json.gz"),
    ):  # fmt: skip
        name = stack.physical[bucket]
        # moto's CloudFormation does not apply NotificationConfiguration...
        got = aws.s3.get_bucket_notification_configuration(Bucket=name)
        assert not got.get("QueueConfigurations"), "moto now applies notifications: drop the step below"
        # ...so apply the template's own, resolved against the created stack
        qcs = stack.resolve(tpl["Resources"][bucket]["Properties"]["NotificationConfiguration"]["QueueConfigurations"])
        aws.s3.put_bucket_notification_configuration(
            Bucket=name,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {"QueueArn": c["Queue"], "Events": [c["Event"]],
                     "Filter": {"Key": {"FilterRules": c["Filter"]["S3Key"]["Rules"]}}}
                    for c in qcs
                ]
            },
        )  # fmt: skip
        url = stack.physical[queue]
        aws.sqs.purge_queue(QueueUrl=url)  # the s3:TestEvent
        aws.s3.put_object(Bucket=name, Key=outside, Body=b"x")
        aws.s3.put_object(Bucket=name, Key=inside, Body=b"x")
        msgs = []  # moto sends notifications as the object is put
        for _ in range(2):
            msgs += aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        keys = [unquote_plus(r["s3"]["object"]["key"]) for m in msgs for r in json.loads(m["Body"]).get("Records", [])]
        assert keys == [inside], (bucket, keys)


@pytest.mark.parametrize("compute", COMPUTES)
def test_queues_and_dead_letter_queues(aws, stacks, compute):
    stack, params = stacks[compute]
    for b in ("Router", "Loader"):
        vis = int(stack.queue_attr(f"{b}Queue", "VisibilityTimeout"))
        if compute == "lambda":
            timeout = getattr(aws, "lambda").get_function_configuration(FunctionName=stack.physical[f"{b}Function"])["Timeout"]
            assert timeout == int(params[f"{b}TimeoutSeconds"])
            assert vis >= 6 * timeout
        else:
            # as today: the parameter (600 given for none, the default 300 for fargate)
            assert vis == int(params["VisibilityTimeoutSeconds"])
            assert vis == (600 if compute == "none" else 300)
        redrive = json.loads(stack.queue_attr(f"{b}Queue", "RedrivePolicy"))
        assert redrive["deadLetterTargetArn"] == stack.queue_attr(f"{b}DeadLetterQueue", "QueueArn")
        assert int(redrive["maxReceiveCount"]) == 5


def test_lambda_functions_and_event_sources(aws, stacks):
    stack, params = stacks["lambda"]
    lam = getattr(aws, "lambda")
    copy_role = aws.iam.get_role(RoleName=stack.physical["RedshiftCopyRole"])["Role"]["Arn"]
    env = {}
    for b in ("Router", "Loader"):
        fn = stack.physical[f"{b}Function"]
        cfg = lam.get_function_configuration(FunctionName=fn)
        assert (cfg["Runtime"], cfg["Handler"]) == ("provided.al2023", "bootstrap")
        role = aws.iam.get_role(RoleName=stack.physical[f"{b}TaskRole"])["Role"]
        assert cfg["Role"] == role["Arn"]
        principals = role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"]
        assert "lambda.amazonaws.com" in principals
        env[b] = cfg["Environment"]["Variables"]
        assert env[b]["LOGROUTER_METRICS__FORMAT"] == "emf"
        assert env[b]["LOGROUTER_METRICS__NAMESPACE"] == "acme/logrouter"
        assert env[b]["LOGROUTER_LOG__FORMAT"] == "json"

        (esm,) = lam.list_event_source_mappings(FunctionName=fn)["EventSourceMappings"]
        assert esm["EventSourceArn"] == stack.queue_attr(f"{b}Queue", "QueueArn")
        assert esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert esm["ScalingConfig"] == {"MaximumConcurrency": int(params[f"{b}MaximumConcurrency"])}
        assert esm["BatchSize"] == int(params[f"{b}BatchSize"])
        assert esm["MaximumBatchingWindowInSeconds"] == int(params[f"{b}BatchingWindowSeconds"])
    assert lam.get_function_configuration(FunctionName=stack.physical["RouterFunction"])["MemorySize"] == 2048
    assert env["Router"]["LOGROUTER_ROUTE__OUT"] == f"s3://acme-lambda-routed/{ROUTED_PREFIX}"
    assert env["Router"]["LOGROUTER_ROUTE__SPOOL_DIR"] == "/tmp"
    assert env["Loader"]["LOGROUTER_LOAD__WAREHOUSE"] == f"redshift://analytics/dev?db_user=loader&iam_role={copy_role}"
    for b in ("router", "loader"):
        (group,) = aws.logs.describe_log_groups(logGroupNamePrefix=f"/logrouter/logrouter-lambda/{b}")["logGroups"]
        assert group["retentionInDays"] == 14
    for key in ("RouterFunctionName", "RouterFunctionArn", "LoaderFunctionName", "LoaderFunctionArn",
                "RouterEventSourceMappingId", "DashboardName", "DashboardUrl", "RouterLogGroupName",
                "RouterQueueUrl", "LoaderQueueUrl"):  # fmt: skip
        assert stack.outputs.get(key), key


def test_without_lambda_the_roles_trust_ecs_tasks_only(aws, stacks):
    for compute in ("none", "fargate"):
        stack, _ = stacks[compute]
        role = aws.iam.get_role(RoleName=stack.physical["RouterTaskRole"])["Role"]
        assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}


def test_fargate_services_and_task_definitions(aws, stacks):
    stack, params = stacks["fargate"]
    cluster = stack.physical["Cluster"]
    assert stack.outputs["ClusterName"] == cluster.split("/")[-1]
    queues = {"router": stack.physical["RouterQueue"], "loader": stack.physical["LoaderQueue"]}
    for b in ("router", "loader"):
        svc = aws.ecs.describe_services(cluster=cluster, services=[stack.outputs[f"{b.capitalize()}ServiceName"]])
        (svc,) = svc["services"]
        td = aws.ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
        (c,) = td["containerDefinitions"]
        assert c["image"] == params["ImageUri"]
        cmd = c["command"]
        assert cmd[:4] == [b, "run", "--queue-url", queues[b]]
        assert cmd[-2:] == ["--metrics-addr", "0.0.0.0:9100"]
        if b == "router":
            assert cmd[4:6] == ["--out", f"s3://acme-fargate-routed/{ROUTED_PREFIX}"]
        else:
            assert cmd[4:6] == ["--warehouse", params["Warehouse"]]
        assert c["healthCheck"]["command"] == [
            "CMD", f"/usr/local/bin/{b}", "healthcheck", "--addr", "127.0.0.1:9100", "--path", "/livez"
        ]
        assert 30 < c["stopTimeout"] <= 120  # above queue.shutdown_grace_secs, Fargate's max
        env = {e["name"]: e["value"] for e in c["environment"]}
        assert env == {"LOGROUTER_METRICS__FORMAT": "emf", "LOGROUTER_METRICS__NAMESPACE": "acme/logrouter"}
        log = c["logConfiguration"]
        assert log["logDriver"] == "awslogs"
        assert log["options"]["awslogs-group"] == f"/logrouter/logrouter-fargate/{b}"
        assert aws.logs.describe_log_groups(logGroupNamePrefix=log["options"]["awslogs-group"])["logGroups"]
    # no VPC security group given: one with egress only was created
    sg = aws.ec2.describe_security_groups(GroupIds=[stack.physical["TaskSecurityGroup"]])["SecurityGroups"][0]
    assert sg["VpcId"] == params["VpcId"] and sg["IpPermissions"] == []


@pytest.mark.parametrize("compute", COMPUTES)
def test_dashboard(aws, stacks, compute):
    stack, _ = stacks[compute]
    if compute == "none":
        assert "Dashboard" not in stack.physical and "DashboardName" not in stack.outputs
        return
    body = json.loads(aws.cloudwatch.get_dashboard(DashboardName=stack.outputs["DashboardName"])["DashboardBody"])
    rows = []
    for w in body["widgets"]:
        prev = None
        for row in w["properties"].get("metrics", []):
            if isinstance(row[0], str):  # "." repeats the previous row's value
                row = [prev[i] if x == "." else x for i, x in enumerate(row)]
                prev = row
            rows.append(row)
    metrics = json.dumps(rows)
    titles = " | ".join(w["properties"].get("title", "") for w in body["widgets"])
    for name in COUNTERS:
        assert name in metrics, name
    assert '{\\"acme/logrouter\\",service,type} MetricName=\\"logrouter_router_lines_routed_total\\"' in metrics
    assert "SUM(SEARCH(" in metrics
    assert "ApproximateAgeOfOldestMessage" in metrics
    for q in ("RouterQueue", "LoaderQueue", "RouterDeadLetterQueue", "LoaderDeadLetterQueue"):
        assert stack.queue_attr(q, "QueueArn").split(":")[-1] in metrics, q
    for w in body["widgets"]:
        if w["type"] == "metric":
            assert w["properties"]["region"] == "us-east-1"
    lambda_metrics = ("Duration", "Errors", "Throttles")
    if compute == "lambda":
        for m in lambda_metrics:
            assert f'"AWS/Lambda", "{m}"' in metrics, m
        assert stack.physical["RouterFunction"] in metrics
        assert "Fargate" not in titles
    else:
        assert "AWS/Lambda" not in metrics and "Lambda" not in titles
        assert "RunningTaskCount" in metrics
