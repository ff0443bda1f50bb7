"""Set-up of the moto peer (tests/cloud/moto.sh), with boto3 as any AWS user would.

  bootstrap ENDPOINT CREDENTIALS_FILE
      The 5 unchecked actions moto allows (INITIAL_NO_AUTH_ACTION_COUNT=5): an IAM user,
      its policy (EC2, Secrets Manager, assuming roles), the role ROLE_ARN (the identity of
      the connector's machine or pod: web identity and instance metadata, see
      aws_identity_peer.py) with its policy (reading instances and secrets only), the user's
      access key. Writes a shared credentials file (0600) with profile "moto" (that key) and
      "wrong" (the same id, another secret).
  instances ENDPOINT CREDENTIALS_FILE REGION CIDR SPEC...
      A VPC 127.0.0.0/16 and subnet CIDR in REGION (once), then one instance per SPEC
      `IP|STATE|KEY=VALUE,KEY=VALUE` (STATE running or stopped), one reservation each;
      prints the instance ids, one per line, in order.
  secret ENDPOINT CREDENTIALS_FILE REGION NAME VALUE_FILE
      A Secrets Manager secret NAME whose SecretString is VALUE_FILE's content.
  stop ENDPOINT CREDENTIALS_FILE REGION ID
      Stop instance ID (it leaves discovery).
  fleet ENDPOINT CREDENTIALS_FILE REGION COUNT PER_CALL
      COUNT instances in REGION, PER_CALL per RunInstances (the scale benchmark).
"""

import configparser
import os
import sys

import boto3
from botocore.config import Config

NO_RETRY = Config(retries={"max_attempts": 1})
ROLE_ARN = "arn:aws:iam::123456789012:role/latch-connector"


def client(endpoint, creds, service, region):
    cfg = configparser.ConfigParser()
    cfg.read(creds)
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=cfg["moto"]["aws_access_key_id"],
        aws_secret_access_key=cfg["moto"]["aws_secret_access_key"],
        config=NO_RETRY,
    )


def bootstrap(endpoint, creds):
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",
        config=NO_RETRY,
    )
    iam.create_user(UserName="latch")
    iam.put_user_policy(
        UserName="latch",
        PolicyName="latch",
        PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
        '"Action":["ec2:*","secretsmanager:*","sts:AssumeRole","sts:AssumeRoleWithWebIdentity"],'
        '"Resource":"*"}]}',
    )
    # AWS would trust ec2.amazonaws.com (an instance profile) and the OIDC provider
    # (web identity); moto checks a trust policy's "AWS" principals only, and the two
    # stand-ins of aws_identity_peer.py ask moto as the user "latch".
    iam.create_role(
        RoleName="latch-connector",
        AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
        '"Principal":{"AWS":"arn:aws:iam::123456789012:user/latch"},'
        '"Action":["sts:AssumeRole","sts:AssumeRoleWithWebIdentity"]}]}',
    )
    iam.put_role_policy(
        RoleName="latch-connector",
        PolicyName="latch-read",
        PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
        '"Action":["ec2:DescribeInstances","ec2:DescribeRegions",'
        '"secretsmanager:GetSecretValue"],"Resource":"*"}]}',
    )
    key = iam.create_access_key(UserName="latch")["AccessKey"]
    fd = os.open(creds, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(
            "[moto]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
            "[wrong]\naws_access_key_id = %s\naws_secret_access_key = not-the-secret\n"
            % (key["AccessKeyId"], key["SecretAccessKey"], key["AccessKeyId"])
        )


def subnet(ec2, cidr):
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "cidr", "Values": ["127.0.0.0/16"]}])["Vpcs"]
    vpc = vpcs[0]["VpcId"] if vpcs else ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "cidr-block", "Values": [cidr]}])["Subnets"]
    if subnets:
        return subnets[0]["SubnetId"]
    return ec2.create_subnet(VpcId=vpc, CidrBlock=cidr)["Subnet"]["SubnetId"]


def instances(endpoint, creds, region, cidr, specs):
    ec2 = client(endpoint, creds, "ec2", region)
    sub = subnet(ec2, cidr)
    for spec in specs:
        ip, state, tags = spec.split("|", 2)
        pairs = [t.split("=", 1) for t in tags.split(",") if t]
        run = ec2.run_instances(
            ImageId="ami-12345678",
            InstanceType="t3.micro",
            MinCount=1,
            MaxCount=1,
            SubnetId=sub,
            PrivateIpAddress=ip,
            TagSpecifications=[
                {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in pairs]}
            ],
        )
        iid = run["Instances"][0]["InstanceId"]
        if state == "stopped":
            ec2.stop_instances(InstanceIds=[iid])
        print(iid)


def fleet(endpoint, creds, region, count, per_call):
    ec2 = client(endpoint, creds, "ec2", region)
    made = 0
    while made < count:
        n = min(per_call, count - made)
        ec2.run_instances(
            ImageId="ami-12345678",
            InstanceType="t3.micro",
            MinCount=n,
            MaxCount=n,
            TagSpecifications=[
                {"ResourceType": "instance", "Tags": [{"Key": "env", "Value": "bench"}]}
            ],
        )
        made += n


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "bootstrap":
        bootstrap(*args)
    elif cmd == "instances":
        instances(args[0], args[1], args[2], args[3], args[4:])
    elif cmd == "secret":
        with open(args[4]) as f:
            value = f.read()
        client(args[0], args[1], "secretsmanager", args[2]).create_secret(
            Name=args[3], SecretString=value
        )
    elif cmd == "stop":
        client(args[0], args[1], "ec2", args[2]).stop_instances(InstanceIds=[args[3]])
    elif cmd == "fleet":
        fleet(args[0], args[1], args[2], int(args[3]), int(args[4]))
    else:
        sys.exit("usage: see the module docstring")
