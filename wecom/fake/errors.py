"""Error codes the fake WeCom answers with, and the exception its handlers raise."""

# Codes documented by WeCom's global error code table.
SYSTEM_BUSY = -1
INVALID_CREDENTIAL = 40001  # wrong corpsecret
INVALID_CORPID = 40013
INVALID_ACCESS_TOKEN = 40014
INVALID_PARAMETER = 40058  # used for every malformed or over-limit argument
INVALID_TAG_ID = 40068
TAG_NAME_EXISTS = 40071
MISSING_ACCESS_TOKEN = 41001
EXPIRED_ACCESS_TOKEN = 42001
API_FREQ_OUT_OF_LIMIT = 45009
TOO_MANY_CONCURRENT_CALLS = 45033
DATA_FORMAT_ERROR = 47001  # body is not JSON
USER_NOT_FOUND = 60111
NOT_EXTERNAL_CONTACT = 84061  # no follow relation (also: a staff member without customers)

# Stand-ins: the behaviour is WeCom's, the exact code is not confirmed.
WELCOME_CODE_INVALID = 41051  # confirmed for "already sent"; also used for unknown/expired codes
REMIND_LIMIT_EXCEEDED = 41063  # the 4th remind_groupmsg_send within 24 h
INVALID_CHAT_ID = 40050  # unknown or dismissed customer group
INVALID_CONFIG_ID = 40058  # unknown contact way / join way config_id
INVALID_MSGID = 40058  # unknown mass message id
TRANSFER_LIMIT_EXCEEDED = 40129  # a customer transferred twice within 90 days

UNKNOWN_API = 404  # with HTTP status 404


class ApiError(Exception):
    """A WeCom error answer: HTTP 200 with a non-zero errcode."""

    def __init__(self, errcode: int, errmsg: str):
        super().__init__(f"{errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
