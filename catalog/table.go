package catalog

import "github.com/imedge/imedge/audit"

// entry is one row of the table. The omit flags name what the command
// lacks compared with the common envelope, so most rows state none.
type entry struct {
	name   string
	kind   Kind
	src    string
	omit   omission
	fields []Field
	reply  *ReplySchema
}

// omission flags what a command's request lacks.
type omission uint8

const (
	noClientIP    omission = 1 << iota // no ClientIP query parameter
	noOptPlatform                      // no OptPlatform query parameter
	noBodyCommand                      // no top-level CallbackCommand in the body
)

// intl is the prefix of the international documentation pages.
const intl = "https://www.tencentcloud.com/document/product/1047/"

// table returns the command table: every callback IM posts to the app's
// callback URL, in the order of the protocol notes (im-callbacks.md §1.3).
// It is a function so that nothing can modify a shared copy. To add a
// command, add its row here and its example body under examples/.
func table() []entry {
	return []entry{
		// Operations, online status, profile and relationship chain.
		{name: "Alert.RequestOverLimit", kind: After, omit: noClientIP,
			src:    "https://tencentcloud.com/document/product/1047/60256",
			fields: []Field{str("ServiceName"), str("Command"), num("Request"), num("Limit")}},
		{name: "State.StateChange", kind: After, src: intl + "34357",
			fields: []Field{eventTime(),
				req(obj("Info", str("Action"), reqAcct("To_Account"), str("Reason"))),
				objs("KickedDevice", str("Platform"))}},
		{name: "Profile.CallbackPortraitSet", kind: After,
			src:    "https://cloud.tencent.com/document/product/269/76489",
			fields: []Field{acct("Operator_Account"), reqAcct("From_Account"), eventTime(), objs("ProfileItem", str("Tag"))}},
		{name: "Sns.CallbackPrevFriendAdd", kind: Before, src: intl + "43468",
			fields: []Field{acct("Requester_Account"), reqAcct("From_Account"),
				req(objs("FriendItem", reqAcct("To_Account"), str("Remark"), str("GroupName"), str("AddSource"), str("AddWording"))),
				str("AddType"), num("ForceAddFlags"), eventTime()},
			reply: friendReply("FriendItem")},
		{name: "Sns.CallbackPrevFriendResponse", kind: Before, src: intl + "43467",
			fields: []Field{acct("Requester_Account"), reqAcct("From_Account"),
				req(objs("ResponseFriendItem", reqAcct("To_Account"), str("Remark"), str("TagName"), str("ResponseAction"))),
				eventTime()},
			reply: friendReply("ResponseFriendItem")},
		{name: "Sns.CallbackFriendAdd", kind: After, src: "https://cloud.tencent.com/document/product/269/1657",
			fields: []Field{pairList(acct("Initiator_Account")), str("ClientCmd"), acct("Admin_Account"), num("ForceFlag")}},
		{name: "Sns.CallbackFriendDelete", kind: After, src: intl + "34360",
			fields: []Field{pairList()}},
		{name: "Sns.CallbackBlackListAdd", kind: After, src: intl + "34361",
			fields: []Field{pairList()}},
		{name: "Sns.CallbackBlackListDelete", kind: After, src: intl + "34362",
			fields: []Field{pairList()}},

		// Follow, and one-to-one messages.
		{name: "Follow.CallbackAfterFollowAdd", kind: After, src: intl + "70355",
			fields: []Field{reqAcct("From_Account"), req(objs("FollowList", reqAcct("To_Account"))), eventTime()}},
		{name: "Follow.CallbackAfterFollowDelete", kind: After, src: intl + "70356",
			fields: []Field{reqAcct("From_Account"), req(accts("To_Account")), eventTime()}},
		{name: "C2C.CallbackBeforeSendMsg", kind: Before, src: "https://cloud.tencent.com/document/product/269/1632",
			fields: c2cMsg(),
			reply:  sendMsgReply(120001, 130000)},
		{name: "C2C.CallbackAfterSendMsg", kind: After, src: "https://cloud.tencent.cn/document/product/269/2716",
			fields: append(c2cMsg(), num("SendMsgResult"), str("ErrorInfo"), num("UnreadMsgNum"))},
		{name: "C2C.CallbackAfterMsgReport", kind: After, src: "https://cloud.tencent.com/document/product/269/61696",
			fields: []Field{reqAcct("Report_Account"), reqAcct("Peer_Account"), num("LastReadTime"), num("UnreadMsgNum"), eventTime()}},
		{name: "C2C.CallbackAfterMsgWithDraw", kind: After, src: "https://cloud.tencent.cn/document/product/269/61697",
			fields: []Field{reqAcct("From_Account"), reqAcct("To_Account"), reqID("MsgKey"), num("UnreadMsgNum"), eventTime()}},
		{name: "C2C.CallbackAfterC2CMsgExtension", kind: After, src: "https://cloud.tencent.com/document/product/269/126475",
			fields: []Field{reqAcct("From_Account"), reqAcct("To_Account"), reqID("MsgKey"), num("OperateType"),
				objs("ExtensionList", str("Key"), str("Value"), num("Seq")), num("Seq"), eventTime()}},
		{name: "C2C.CallbackAfterMsgReadReceipt", kind: After, src: "https://cloud.tencent.com/document/product/269/128223",
			fields: []Field{reqAcct("Operator_Account"), reqAcct("Peer_Account"),
				objs("C2CMsgInfo", acct("From_Account"), acct("To_Account"), id("MsgKey"), id("MsgId")), eventTime()}},
		{name: "C2C.CallbackAfterModifyMsg", kind: After, src: "https://cloud.tencent.com/document/product/269/128224",
			fields: []Field{acct("Operator_Account"), reqAcct("From_Account"), reqAcct("To_Account"), num("MsgRandom"), num("MsgSeq"),
				num("MsgTime"), reqID("MsgKey"), msgBody(), str("CloudCustomData"), eventTime()}},
		{name: "C2C.CallbackAfterMsgReadAll", kind: After, src: "https://cloud.tencent.com/document/product/269/128225",
			fields: []Field{reqAcct("Report_Account"), eventTime(), objs("GroupReadInfo", id("GroupId"), num("MsgSeq"))}},

		// Groups and topics.
		{name: "Group.CallbackOnDailyGroupQuotaAlarm", kind: After, src: intl + "57455",
			fields: []Field{num("QuotaUsed"), num("Quota"), eventTime()}},
		{name: "Group.CallbackAfterGroupMsgExtension", kind: After, src: "https://cloud.tencent.com/document/product/269/126476",
			fields: []Field{reqID("GroupId"), req(num("MsgSeq")), num("OperateType"),
				objs("ExtensionList", str("Key"), str("Value"), num("Seq")), num("Seq"), eventTime()}},
		{name: "Group.CallbackBeforeCreateGroup", kind: Before, src: "https://cloud.tencent.com/document/product/269/1662",
			fields: createGroup(),
			reply:  codeReply(10100, 10200)},
		{name: "Group.CallbackAfterCreateGroup", kind: After, src: intl + "34369",
			fields: append(createGroup(), reqID("GroupId"), objs("UserDefinedDataList", str("Key"), str("Value")))},
		{name: "Group.CallbackBeforeApplyJoinGroup", kind: Before, src: "https://www.tencentcloud.com/zh/document/product/1047/34370",
			fields: []Field{reqID("GroupId"), str("Type"), reqAcct("Requestor_Account"), eventTime()},
			reply:  codeReply(10100, 10200)},
		{name: "Group.CallbackBeforeInviteJoinGroup", kind: Before, src: intl + "34371",
			fields: []Field{reqID("GroupId"), str("Type"), acct("Operator_Account"), req(members("DestinationMembers")), eventTime()},
			reply:  inviteReply()},
		{name: "Group.CallbackAfterNewMemberJoin", kind: After, src: intl + "34372",
			fields: []Field{reqID("GroupId"), str("Type"), str("JoinType"), acct("Operator_Account"), req(members("NewMemberList")), eventTime()}},
		{name: "Group.CallbackAfterMemberExit", kind: After, src: intl + "34373",
			fields: []Field{reqID("GroupId"), str("Type"), str("ExitType"), acct("Operator_Account"), req(members("ExitMemberList")), eventTime()}},
		{name: "Group.CallbackBeforeSendMsg", kind: Before, src: "https://cloud.tencent.com/document/product/269/1619",
			fields: groupMsg(),
			reply:  sendMsgReply(10100, 10200)},
		{name: "Group.CallbackAfterSendMsg", kind: After, src: intl + "34375",
			fields: append(groupMsg(), num("MsgSeq"), num("MsgTime"), accts("GroupAt_Account"))},
		{name: "Group.CallbackAfterGroupFull", kind: After, src: intl + "34376",
			fields: []Field{reqID("GroupId"), eventTime()}},
		{name: "Group.CallbackAfterGroupDestroyed", kind: After, src: intl + "34377",
			fields: []Field{reqID("GroupId"), str("Type"), acct("Owner_Account"), str("Name"), members("MemberList"), eventTime()}},
		{name: "Group.CallbackAfterGroupInfoChanged", kind: After, src: intl + "34378",
			fields: []Field{reqID("GroupId"), str("Type"), acct("Operator_Account"), eventTime()}},
		{name: "Group.CallbackAfterRecallMsg", kind: After, src: "https://cloud.tencent.com/document/product/269/73141",
			fields: []Field{acct("Operator_Account"), str("Type"), reqID("GroupId"),
				req(objs("MsgSeqList", num("MsgSeq"), id("MsgId"))), id("TopicId"), eventTime()}},
		{name: "Group.CallbackOnMemberStateChange", kind: After, src: intl + "48734",
			fields: []Field{reqID("GroupId"), str("Type"), str("EventType"), members("MemberList")}},
		{name: "Group.CallbackSendMsgException", kind: After, src: intl + "49462",
			fields: append(groupMsg(), num("ErrorCode"), str("ErrorInfo"))},
		{name: "Group.CallbackBeforeCreateTopic", kind: Before, src: intl + "49463",
			fields: []Field{reqAcct("Operator_Account"), id("GroupId"), str("Type"), str("Name"), eventTime()},
			reply:  codeReply(10100, 10200)},
		{name: "Group.CallbackAfterCreateTopic", kind: After, src: intl + "49464",
			fields: []Field{reqID("GroupId"), reqID("TopicId"), acct("Operator_Account"), acct("Owner_Account"), str("Type"), str("Name"),
				objs("UserDefinedDataList", str("Key"), str("Value")), eventTime()}},
		{name: "Group.CallbackAfterTopicDestroyed", kind: After, src: intl + "49465",
			fields: []Field{reqID("GroupId"), str("Type"), ids("TopicIdList"), eventTime()}},
		{name: "Group.CallbackAfterTopicInfoChanged", kind: After, src: intl + "49466",
			fields: []Field{reqID("GroupId"), id("TopicId"), str("Type"), acct("Operator_Account"), eventTime()}},
		{name: "Group.CallbackAfterMemberFieldChanged", kind: After, src: intl + "60393",
			fields: []Field{reqID("GroupId"), str("Type"), acct("Operator_Account"), acct("Modified_Account"), eventTime()}},
		{name: "Group.CallbackAfterGroupAttrChanged", kind: After, src: intl + "60394",
			fields: []Field{reqID("GroupId"), str("Type"), acct("Operator_Account"), eventTime()}},
		{name: "Group.CallbackAfterReadReceipt", kind: After, src: intl + "60395",
			fields: []Field{reqID("GroupId"), str("Type"), objs("GroupMsgReceiptList", num("MsgSeq")), eventTime()}},
		{name: "Group.CallbackAfterChangeGroupOwner", kind: After, src: intl + "60396",
			fields: []Field{reqID("GroupId"), str("Type"), acct("Operator_Account"), acct("OldOwner_Account"), reqAcct("NewOwner_Account"), eventTime()}},
		{name: "Group.CallbackAfterModifyMsg", kind: After, src: "https://cloud.tencent.com/document/product/269/129193",
			fields: []Field{acct("Operator_Account"), reqID("GroupId"), id("TopicId"), req(num("MsgSeq")), msgBody(), eventTime()}},

		// Content moderation and bots.
		{name: "ContentCallback.ResultNotify", kind: After, omit: noClientIP | noOptPlatform | noBodyCommand,
			src: "https://trtc.io/zh/document/78240",
			fields: []Field{str("Scene"), num("SdkAppId"), acct("From_Account"),
				obj("ContactItem", num("ContactType"), acct("To_Account"), id("ToGroupId")),
				str("ContentType"), Field{Name: "TextContent", Type: Strings}, id("MsgID"), str("CloudCustomData")}},
		{name: "Bot.OnC2CMessage", kind: After, src: "https://cloud.tencent.com/document/product/269/90407",
			fields: append(c2cMsg(), num("SendMsgResult"), str("ErrorInfo"), num("UnreadMsgNum"))},
		{name: "Bot.OnGroupMessage", kind: After, src: "https://cloud.tencent.com/document/product/269/89994",
			fields: []Field{reqID("GroupId"), str("Type"), reqAcct("From_Account"), acct("Operator_Account"), num("Random"), num("MsgSeq"),
				num("MsgTime"), num("OnlineOnlyFlag"), msgBody(), accts("AtRobots_Account"), str("CloudCustomData"), eventTime()}},
		{name: "Chatbot.OnC2CSignalMessage", kind: Reply, src: "https://cloud.tencent.com/document/product/269/103730",
			fields: []Field{reqAcct("From_Account"), reqAcct("To_Account"), num("MsgSeq"), num("MsgRandom"), id("MsgKey"), eventTime(), str("Data")},
			reply:  &ReplySchema{Deny: true, DefaultDeny: 1, RspData: true}},

		// Official accounts.
		{name: "OfficialAccount.CallbackBeforeCreateOfficialAccount", kind: Before, src: "https://cloud.tencent.com/document/product/269/102315",
			fields: []Field{acct("Operator_Account"), reqAcct("Owner_Account"), str("Name"), eventTime()},
			reply:  &ReplySchema{Deny: true, DefaultDeny: 1}},
		{name: "OfficialAccount.CallbackAfterCreateOfficialAccount", kind: After, src: "https://tencentcloud.com/zh/document/product/1047/60796",
			fields: []Field{acct("Operator_Account"), acct("Owner_Account"), str("Name"), reqOfficial(), eventTime()}},
		{name: "OfficialAccount.CallbackAfterOfficialAccountInfoChanged", kind: After, src: "https://cloud.tencent.com/document/product/269/102317",
			fields: []Field{reqOfficial(), acct("Operator_Account"), eventTime()}},
		{name: "OfficialAccount.CallbackAfterOfficialAccountDestroyed", kind: After, src: "https://cloud.tencent.com/document/product/269/102314",
			fields: []Field{reqOfficial(), acct("Owner_Account"), str("Name"), eventTime()}},
		{name: "OfficialAccount.CallbackBeforeAddSubscriber", kind: Before, src: "https://cloud.tencent.com/document/product/269/102319",
			fields: subscribers(),
			reply:  subscribeReply()},
		{name: "OfficialAccount.CallbackAfterAddSubscriber", kind: After, src: "https://cloud.tencent.com/document/product/269/102320",
			fields: subscribers()},
		{name: "OfficialAccount.CallbackAfterOfficialAccountFull", kind: After, src: "https://trtc.io/zh/document/60801",
			fields: []Field{reqOfficial(), eventTime()}},
		{name: "OfficialAccount.CallbackAfterDeleteSubscriber", kind: After, src: "https://cloud.tencent.com/document/product/269/102314",
			fields: subscribers()},
		{name: "OfficialAccount.CallbackBeforeSendMsg", kind: Before, src: "https://www.tencentcloud.com/zh/document/product/1047/60803",
			fields: []Field{reqOfficial(), num("OnlineOnlyFlag"), msgBody(), str("CloudCustomData"), eventTime()},
			reply:  sendMsgReply(120001, 130000)},
		{name: "OfficialAccount.CallbackAfterSendMsg", kind: After, src: "https://cloud.tencent.com/document/product/269/102324",
			fields: []Field{reqOfficial(), reqID("MsgKey"), num("MsgTime"), num("OnlineOnlyFlag"), msgBody(), str("CloudCustomData"), eventTime()}},
		{name: "OfficialAccount.CallbackAfterMsgWithDraw", kind: After, src: "https://cloud.tencent.com/document/product/269/102314",
			fields: []Field{reqOfficial(), req(objs("WithdrawMsgList", reqID("MsgKey"))), eventTime()}},

		// Push plugin: batches of 1 to 100 events, CallbackCommand inside each.
		{name: "Push.OfflinePush", kind: After, omit: noClientIP | noOptPlatform | noBodyCommand,
			src: "https://trtc.io/document/67552",
			fields: []Field{pushEvents(num("EventType"), eventTime(), acct("From_Account"), acct("To_Account"),
				num("PushPlatform"), num("PushStage"), id("MsgKey"), id("GroupID"), num("MsgSeq"), num("MsgRandom"),
				num("MsgTime"), id("PushID"), num("ErrCode"), str("ErrInfo"))}},
		{name: "Push.AllMemberPush", kind: After, omit: noClientIP | noOptPlatform | noBodyCommand,
			src: "https://cloud.tencent.com/document/product/269/102568",
			fields: []Field{pushEvents(num("EventType"), id("TaskId"), num("TaskTime"), eventTime(), acct("To_Account"),
				num("PushPlatform"), num("PushStage"), num("ErrCode"), str("ErrInfo"))}},
	}
}

// Field constructors for the table.

func str(name string) Field     { return Field{Name: name, Type: String} }
func num(name string) Field     { return Field{Name: name, Type: Number} }
func acct(name string) Field    { return Field{Name: name, Type: String, Account: true} }
func reqAcct(name string) Field { return req(acct(name)) }
func id(name string) Field      { return Field{Name: name, Type: String, ID: true} }
func reqID(name string) Field   { return req(id(name)) }
func accts(name string) Field   { return Field{Name: name, Type: Strings, Account: true} }
func ids(name string) Field     { return Field{Name: name, Type: Strings, ID: true} }
func eventTime() Field          { return Field{Name: "EventTime", Type: Time} }

func obj(name string, fields ...Field) Field {
	return Field{Name: name, Type: Object, Fields: fields}
}

func objs(name string, fields ...Field) Field {
	return Field{Name: name, Type: Objects, Fields: fields}
}

func req(f Field) Field { f.Required = true; return f }

// reqOfficial is an official account's id: an account field (its problems
// are bad_account) whose values are app-defined ids with the @TOA#_ prefix
// and no documented length, so it gets the id bound, not the UserID one.
func reqOfficial() Field {
	f := reqAcct("Official_Account")
	f.MaxBytes = MaxIDBytes
	return f
}

// pairList is the PairList of the Sns relationship callbacks. An empty
// PairList carries no relationship change: it is answered OK and not
// forwarded.
func pairList(extra ...Field) Field {
	f := req(objs("PairList", append([]Field{reqAcct("From_Account"), reqAcct("To_Account")}, extra...)...))
	f.Reason = audit.BadPairList
	f.NothingIfEmpty = true
	return f
}

// members is a list of {"Member_Account": ...} objects.
func members(name string) Field { return objs(name, reqAcct("Member_Account")) }

// msgBody is a TIMMessage array: objects with a MsgType and a MsgContent.
func msgBody() Field {
	return objs("MsgBody", str("MsgType"), Field{Name: "MsgContent", Type: Object})
}

// pushEvents is the Events batch of the Push.* callbacks.
func pushEvents(fields ...Field) Field {
	f := req(objs("Events", append([]Field{str("CallbackCommand")}, fields...)...))
	f.MinItems, f.MaxItems = 1, 100
	return f
}

// c2cMsg are the fields of a one-to-one message callback.
func c2cMsg() []Field {
	return []Field{reqAcct("From_Account"), reqAcct("To_Account"), num("MsgSeq"), num("MsgRandom"), num("MsgTime"),
		id("MsgKey"), id("MsgId"), num("OnlineOnlyFlag"), msgBody(), str("CloudCustomData"), eventTime()}
}

// groupMsg are the fields of a group message callback.
func groupMsg() []Field {
	return []Field{reqID("GroupId"), str("Type"), reqAcct("From_Account"), acct("Operator_Account"), num("Random"),
		id("MsgId"), num("OnlineOnlyFlag"), msgBody(), str("CloudCustomData"), id("TopicId"), eventTime()}
}

// createGroup are the fields of the group-creation callbacks.
func createGroup() []Field {
	return []Field{reqAcct("Operator_Account"), acct("Owner_Account"), str("Type"), str("Name"), num("CreateGroupNum"),
		members("MemberList"), eventTime()}
}

// subscribers are the fields of the official-account subscriber callbacks.
func subscribers() []Field {
	return []Field{reqOfficial(), acct("Operator_Account"),
		req(objs("SubscribeAccountList", reqAcct("Subscriber_Account"))), eventTime()}
}

// Reply schemas (im-callbacks.md §1.4).

// sendMsgReply: allow 0, refuse 1, drop silently 2, a custom refusal range,
// and MsgBody/CloudCustomData rewrites with ErrorCode 0.
func sendMsgReply(lo, hi int) *ReplySchema {
	return &ReplySchema{Deny: true, Drop: true, Custom: CodeRange{lo, hi}, DefaultDeny: 1, Rewrite: true}
}

// codeReply: allow 0, refuse 1 or a custom code.
func codeReply(lo, hi int) *ReplySchema {
	return &ReplySchema{Deny: true, Custom: CodeRange{lo, hi}, DefaultDeny: 1}
}

// friendReply: the decision is per target, in ResultItem[].ResultCode; the
// top-level ErrorCode only says whether the app worked (IM ignores a
// failure), so it must be 0.
func friendReply(list string) *ReplySchema {
	return &ReplySchema{DefaultDeny: 38000, Targets: &Targets{List: list, Account: "To_Account", Custom: CodeRange{38000, 39000}}}
}

// inviteReply: refuse all with ErrorCode, or some with
// RefusedMembers_Account while ErrorCode is 0.
func inviteReply() *ReplySchema {
	r := codeReply(10100, 10200)
	r.Refusals = &Refusals{Field: "RefusedMembers_Account", List: "DestinationMembers", Account: "Member_Account"}
	return r
}

// subscribeReply: no refusal code; subscribers are refused one by one with
// the list the documented example names (RefusedSubscribers_Account; the
// prose says RefusedMembers_Account).
func subscribeReply() *ReplySchema {
	return &ReplySchema{Refusals: &Refusals{Field: "RefusedSubscribers_Account", List: "SubscribeAccountList", Account: "Subscriber_Account"}}
}
