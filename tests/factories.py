"""factory_boy factories for the domain objects tests build on."""

import factory
from django.utils import timezone

from contacts.models import Contact, Staff
from groups.models import Group


class StaffFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Staff

    userid = factory.Sequence(lambda n: f"staff-{n:03d}")
    name = factory.Sequence(lambda n: f"员工{n}")


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    external_userid = factory.Sequence(lambda n: f"wm-test-{n:05d}")
    name = factory.Sequence(lambda n: f"客户{n}")
    first_added_at = factory.LazyFunction(timezone.now)


class GroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Group

    chat_id = factory.Sequence(lambda n: f"wr-test-{n:04d}")
    name = factory.Sequence(lambda n: f"福利群{n}")
    owner = factory.SubFactory(StaffFactory)
